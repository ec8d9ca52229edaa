import { runtimeError } from './errors.js';
import { type PathScope, pathExists, readPath } from './paths.js';

/** One Choice rule (or nested rule) as written in the ASL. */
export type ChoiceRule = Record<string, unknown> & { Variable?: string; And?: ChoiceRule[]; Or?: ChoiceRule[]; Not?: ChoiceRule; Next?: string };

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

function isTimestamp(value: unknown): value is string {
  return typeof value === 'string' && RFC3339.test(value) && !Number.isNaN(Date.parse(value));
}

/** `*` is a wildcard, `\*` a literal star, `\\` a backslash (ASL StringMatches). */
function wildcardMatches(value: string, pattern: string): boolean {
  let regex = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === '\\' && (pattern[i + 1] === '*' || pattern[i + 1] === '\\')) {
      regex += `\\${pattern[++i]}`;
    } else if (ch === '*') {
      regex += '.*';
    } else {
      regex += ch.replace(/[.+?^${}()|[\]\\/]/g, '\\$&');
    }
  }
  return new RegExp(`^${regex}$`, 's').test(value);
}

type Comparison = { kind: 'string' | 'numeric' | 'boolean' | 'timestamp'; op: 'Equals' | 'LessThan' | 'GreaterThan' | 'LessThanEquals' | 'GreaterThanEquals' | 'Matches' };

const OPERATORS = ['Equals', 'LessThanEquals', 'GreaterThanEquals', 'LessThan', 'GreaterThan', 'Matches'] as const;
const KINDS = { String: 'string', Numeric: 'numeric', Boolean: 'boolean', Timestamp: 'timestamp' } as const;

function parseOperator(name: string): (Comparison & { path: boolean }) | undefined {
  const path = name.endsWith('Path');
  const base = path ? name.slice(0, -4) : name;
  for (const [prefix, kind] of Object.entries(KINDS)) {
    if (!base.startsWith(prefix)) continue;
    const op = OPERATORS.find((o) => base === prefix + o);
    if (!op || (op === 'Matches' && (kind !== 'string' || path))) return undefined;
    if (kind === 'boolean' && op !== 'Equals') return undefined;
    return { kind, op, path };
  }
  return undefined;
}

function compare(kind: Comparison['kind'], op: Comparison['op'], left: unknown, right: unknown): boolean {
  let a: string | number | boolean;
  let b: string | number | boolean;
  switch (kind) {
    case 'string':
      if (typeof left !== 'string' || typeof right !== 'string') return false;
      if (op === 'Matches') return wildcardMatches(left, right);
      [a, b] = [left, right];
      break;
    case 'numeric':
      if (typeof left !== 'number' || typeof right !== 'number') return false;
      [a, b] = [left, right];
      break;
    case 'boolean':
      if (typeof left !== 'boolean' || typeof right !== 'boolean') return false;
      return left === right;
    case 'timestamp':
      if (!isTimestamp(left) || !isTimestamp(right)) return false;
      [a, b] = [Date.parse(left), Date.parse(right)];
      break;
  }
  switch (op) {
    case 'Equals':
      return a === b;
    case 'LessThan':
      return a < b;
    case 'GreaterThan':
      return a > b;
    case 'LessThanEquals':
      return a <= b;
    case 'GreaterThanEquals':
      return a >= b;
    case 'Matches':
      return false;
  }
}

const TYPE_TESTS: Record<string, (value: unknown) => boolean> = {
  IsNull: (v) => v === null,
  IsString: (v) => typeof v === 'string',
  IsNumeric: (v) => typeof v === 'number',
  IsBoolean: (v) => typeof v === 'boolean',
  IsTimestamp: isTimestamp,
};

/** The operator field of a rule (the one key that is not Variable/Next/Comment/Assign). */
function operatorOf(rule: ChoiceRule): string {
  const keys = Object.keys(rule).filter((k) => !['Variable', 'Next', 'Comment', 'Assign', 'Output'].includes(k));
  if (keys.length !== 1) throw runtimeError(`A Choice rule needs exactly one operator, got ${JSON.stringify(keys)}`);
  return keys[0];
}

export function evaluateRule(rule: ChoiceRule, scope: PathScope): boolean {
  if (rule.And) return rule.And.every((r) => evaluateRule(r, scope));
  if (rule.Or) return rule.Or.some((r) => evaluateRule(r, scope));
  if (rule.Not) return !evaluateRule(rule.Not, scope);
  const operator = operatorOf(rule);
  const variable = rule.Variable;
  if (typeof variable !== 'string') throw runtimeError(`Choice rule ${operator} has no Variable`);
  const expected = rule[operator];
  if (operator === 'IsPresent') return pathExists(variable, scope) === expected;
  const test = TYPE_TESTS[operator];
  if (test) {
    // AWS reads an absent variable in a type test as "not that type" rather than failing.
    if (!pathExists(variable, scope)) return expected === false;
    return test(readPath(variable, scope, 'Variable')) === expected;
  }
  const parsed = parseOperator(operator);
  if (!parsed) throw runtimeError(`Unknown Choice operator '${operator}'`);
  const value = readPath(variable, scope, 'Variable');
  const other = parsed.path ? readPath(String(expected), scope, operator) : expected;
  return compare(parsed.kind, parsed.op, value, other);
}

/** All the operator names a rule tree uses (for the definition's support check). */
export function isKnownOperator(name: string): boolean {
  return name === 'IsPresent' || name in TYPE_TESTS || parseOperator(name) !== undefined;
}
