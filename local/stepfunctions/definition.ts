import { AwsError } from '../types.js';
import { type ChoiceRule, isKnownOperator } from './choice.js';
import type { StateDefinition, StateMachineDefinition } from './engine.js';
import { INTRINSIC_NAMES, intrinsicNamesIn } from './intrinsics.js';
import { type IntegrationDeps, resolveIntegration } from './integrations.js';

/**
 * CreateStateMachine's checks: the ASL schema (asl-validator, the same checks AWS runs),
 * then what this engine can actually run, so an unsupported definition is refused up front
 * with InvalidDefinition instead of failing mid-execution.
 */

interface ValidationResult {
  isValid: boolean;
  errorsText: (separator?: string) => string;
}
type AslValidator = (definition: unknown, options?: { checkPaths: boolean; checkArn: boolean }) => ValidationResult;
// asl-validator is CommonJS without type declarations.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const aslValidator = require('asl-validator') as AslValidator;

/**
 * asl-validator's verdicts by definition text. Each call builds and compiles its JSON schemas
 * anew (~0.3 s of CPU on a quiet machine, the largest part of deploying a state machine), and
 * the verdict depends on the text alone: the runtime's three state machines and the test
 * suites' repeated deploys of the same ASL are checked once per process. Bounded, oldest out.
 */
const aslVerdicts = new Map<string, string | undefined>();
const ASL_VERDICTS_KEPT = 64;

function aslProblems(text: string, definition: unknown): string | undefined {
  if (aslVerdicts.has(text)) return aslVerdicts.get(text);
  // asl-validator fills in QueryLanguage on the object it is given: validate a copy.
  const result = aslValidator(structuredClone(definition), { checkPaths: true, checkArn: true });
  const problems = result.isValid ? undefined : result.errorsText('; ');
  if (aslVerdicts.size >= ASL_VERDICTS_KEPT) aslVerdicts.delete(aslVerdicts.keys().next().value as string);
  aslVerdicts.set(text, problems);
  return problems;
}

function invalid(message: string): AwsError {
  return new AwsError('InvalidDefinition', `Invalid State Machine Definition: '${message}'`);
}

function collectStrings(value: unknown, out: string[]): void {
  if (typeof value === 'string') out.push(value);
  else if (Array.isArray(value)) value.forEach((v) => collectStrings(v, out));
  else if (typeof value === 'object' && value !== null) Object.values(value).forEach((v) => collectStrings(v, out));
}

function checkChoiceRule(rule: ChoiceRule, where: string, problems: string[]): void {
  if (rule.And) return rule.And.forEach((r) => checkChoiceRule(r, where, problems));
  if (rule.Or) return rule.Or.forEach((r) => checkChoiceRule(r, where, problems));
  if (rule.Not) return checkChoiceRule(rule.Not, where, problems);
  for (const key of Object.keys(rule)) {
    if (['Variable', 'Next', 'Comment', 'Assign', 'Output'].includes(key)) continue;
    if (!isKnownOperator(key)) problems.push(`${where}: unsupported Choice operator ${key}`);
  }
}

function checkStates(machine: StateMachineDefinition, deps: IntegrationDeps, problems: string[], prefix = ''): void {
  for (const [name, state] of Object.entries(machine.States) as [string, StateDefinition][]) {
    const where = `/States/${prefix}${name}`;
    if (state.QueryLanguage === 'JSONata') problems.push(`${where}: JSONata is not supported by the local Step Functions; use JSONPath`);
    if (state.Type === 'Task' && (typeof state.Resource !== 'string' || !resolveIntegration(state.Resource, deps))) {
      problems.push(`${where}: the resource '${String(state.Resource)}' is not supported by the local Step Functions`);
    }
    if (state.Type === 'Choice') (state.Choices ?? []).forEach((rule, i) => checkChoiceRule(rule, `${where}/Choices/${i}`, problems));
    if (state.Type === 'Map') {
      const extra = state as unknown as Record<string, unknown>;
      for (const field of ['ItemReader', 'ResultWriter', 'ItemBatcher']) {
        if (extra[field] !== undefined) problems.push(`${where}: Map ${field} (distributed map) is not supported locally`);
      }
      const processor = state.ItemProcessor ?? state.Iterator;
      if (processor) checkStates(processor, deps, problems, `${prefix}${name}/ItemProcessor/`);
    }
    if (state.Type === 'Parallel') (state.Branches ?? []).forEach((b, i) => checkStates(b, deps, problems, `${prefix}${name}/Branches/${i}/`));
    const strings: string[] = [];
    collectStrings([state.Parameters, state.ResultSelector, state.Assign, state.ItemSelector, state.ErrorPath, state.CausePath, state.Catch], strings);
    for (const text of strings) {
      for (const fn of intrinsicNamesIn(text)) if (!INTRINSIC_NAMES.includes(fn)) problems.push(`${where}: unknown intrinsic function ${fn}`);
    }
  }
}

/** Parses and checks a definition; throws AwsError('InvalidDefinition') naming every problem. */
export function parseDefinition(text: unknown, deps: IntegrationDeps): StateMachineDefinition {
  if (typeof text !== 'string' || text.trim() === '') throw invalid('the definition must be a non-empty JSON string');
  let definition: unknown;
  try {
    definition = JSON.parse(text);
  } catch (error) {
    throw invalid(`the definition is not JSON: ${(error as Error).message}`);
  }
  if (typeof definition !== 'object' || definition === null || Array.isArray(definition)) throw invalid('the definition must be a JSON object');
  const machine = definition as StateMachineDefinition;
  if (machine.QueryLanguage === 'JSONata') {
    throw invalid('QueryLanguage JSONata is not supported by the local Step Functions; use JSONPath');
  }
  const aslProblem = aslProblems(text, definition);
  if (aslProblem !== undefined) throw invalid(aslProblem);
  const problems: string[] = [];
  checkStates(machine, deps, problems);
  if (problems.length) throw invalid(problems.join('; '));
  return machine;
}
