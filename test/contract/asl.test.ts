import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DYNAMODB_TRANSIENT_ERRORS,
  ErrorName,
  LAMBDA_CRASH_ERRORS,
  TRANSACTION_CONFLICT_ERRORS,
  SNS_TRANSIENT_ERRORS,
  StatesError,
  Step,
  TRANSIENT_ERRORS,
} from '../../domain/index.js';
import { parseDeliverCertificateInput } from '../../functions/deliver-certificate.js';
import { parseIssueCertificateInput } from '../../functions/issue-certificate.js';
import { parseRecordFailureInput } from '../../functions/record-failure.js';
import { parseReleaseClaimInput } from '../../functions/release-claim.js';
import { parseRequestCsrInput } from '../../functions/request-csr.js';
import { parseRetireCertificateInput } from '../../functions/retire-certificate.js';
import { parseRollBackInput } from '../../functions/roll-back.js';
import { exampleDeployment, loadWiring, renderStateMachine, REPO_ROOT, templatePlaceholders } from '../../wiring/index.js';

// asl-validator ships CommonJS without types.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const validateAsl = require('asl-validator') as (definition: unknown) => { isValid: boolean; errors: unknown[]; errorsText: () => string };

interface State {
  Type: string;
  Resource?: string;
  Parameters?: Record<string, unknown>;
  Retry?: { ErrorEquals: string[] }[];
  Catch?: { ErrorEquals: string[] }[];
}

const wiring = loadWiring();
const definition = JSON.parse(renderStateMachine(exampleDeployment())) as { States: Record<string, State> };
const states = Object.entries(definition.States);
const template = readFileSync(join(REPO_ROOT, wiring.stateMachine.definition), 'utf8');

describe('the rotate-device state machine', () => {
  it('is valid ASL once rendered', () => {
    const result = validateAsl(definition);
    expect(result.errorsText()).toBe('');
    expect(result.isValid).toBe(true);
  });

  it('has exactly the states domain Step names', () => {
    expect(states.map(([name]) => name).sort()).toEqual([...Object.values(Step)].sort());
  });

  it('matches only error names the domain defines', () => {
    const known = new Set<string>([
      ...Object.values(ErrorName),
      ...Object.values(StatesError),
      ...TRANSIENT_ERRORS,
      ...DYNAMODB_TRANSIENT_ERRORS,
      ...SNS_TRANSIENT_ERRORS,
      ...LAMBDA_CRASH_ERRORS,
      ...TRANSACTION_CONFLICT_ERRORS,
    ]);
    const used = states.flatMap(([, state]) => [...(state.Retry ?? []), ...(state.Catch ?? [])].flatMap((rule) => rule.ErrorEquals));
    expect(used.length).toBeGreaterThan(0);
    expect(used.filter((name) => !known.has(name))).toEqual([]);
  });

  it('retries every transient AWS error, network failures included, wherever it retries throttling', () => {
    // A step whose SDK gave up on ECONNRESET (TimeoutError) is as safe to run again as one that
    // got a 5xx: the 1,000-device demo under quotas lost three rotations to it (ISSUE_FAILED).
    const rules = states.flatMap(([, state]) => state.Retry ?? []).filter((rule) => rule.ErrorEquals.includes('ThrottlingException'));
    expect(rules.length).toBeGreaterThan(0);
    for (const rule of rules) expect(rule.ErrorEquals).toEqual(expect.arrayContaining([...TRANSIENT_ERRORS]));
  });

  it('uses every wiring substitution as a placeholder, and no other', () => {
    expect(templatePlaceholders()).toEqual(Object.keys(wiring.stateMachine.substitutions).sort());
  });

  it('invokes only functions the wiring defines, through their placeholders', () => {
    const lambdaStates = states.filter(([, state]) => state.Resource?.startsWith('arn:aws:states:::lambda:invoke'));
    expect(lambdaStates.length).toBeGreaterThan(0);
    for (const [name] of lambdaStates) {
      // The raw template names the placeholder; the rendered one only the ARN.
      const block = template.slice(template.indexOf(`"${name}": {`));
      const placeholder = /"FunctionName":\s*"\$\{(\w+)\}"/.exec(block)?.[1];
      expect(placeholder).toBeDefined();
      const ref = wiring.stateMachine.substitutions[placeholder ?? ''];
      expect(ref).toMatch(/^function:/);
      expect(wiring.functions).toHaveProperty([ref.slice('function:'.length)]);
    }
  });
});

/** A plausible execution at the moment each Lambda state runs, for resolving Payload paths. */
const NEW_ID = 'b'.repeat(64);
const executionState = {
  thingName: 'sensor-1',
  certificateId: 'a'.repeat(64),
  trigger: 'audit',
  auditTaskId: '4e2270a6d2a7d2b8d8f4ad6d6fe3e29a',
  checkName: 'DEVICE_CERTIFICATE_EXPIRING_CHECK',
  csr: { pem: '-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n', receivedAt: '2026-03-01T12:00:00.000Z' },
  issued: { certificateId: NEW_ID, certificateArn: `arn:aws:iot:us-east-1:123456789012:cert/${NEW_ID}`, certificatePem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n' },
  error: { Error: 'States.Timeout', Cause: '' },
};
const contextObject = {
  Execution: { Name: 'sensor-1-a0123456789abcdef0123', Id: 'arn:aws:states:us-east-1:123456789012:execution:rotor-rotate-device:sensor-1-a0', StartTime: '2026-03-01T11:00:00.000Z' },
  Task: { Token: 'task-token' },
  State: { RetryCount: 0 },
};
const variables: Record<string, unknown> = { failedStep: Step.DeliverCertificate, pacedUntil: null };

function resolvePath(path: string): unknown {
  const walk = (root: unknown, rest: string): unknown =>
    rest.split('.').filter(Boolean).reduce<unknown>((value, key) => (value as Record<string, unknown> | undefined)?.[key], root);
  if (path.startsWith('$$.')) return walk(contextObject, path.slice(3));
  if (path === '$') return executionState;
  if (path.startsWith('$.')) return walk(executionState, path.slice(2));
  if (path.startsWith('$')) return variables[path.slice(1)];
  throw new Error(`unsupported path ${path}`);
}

function payloadOf(state: State): Record<string, unknown> {
  const payload = (state.Parameters?.Payload ?? {}) as Record<string, string>;
  return Object.fromEntries(Object.entries(payload).map(([key, path]) => (key.endsWith('.$') ? [key.slice(0, -2), resolvePath(path)] : [key, path])));
}

/** Each Lambda state's function, its input parser, and the fields it may do without. */
const readers: Record<string, { parse: (event: unknown) => unknown; optional: string[] }> = {
  [Step.RequestCsr]: { parse: parseRequestCsrInput, optional: ['attempt', 'execution'] },
  [Step.IssueCertificate]: { parse: parseIssueCertificateInput, optional: ['pacedUntil', 'retryCount'] },
  [Step.DeliverCertificate]: { parse: parseDeliverCertificateInput, optional: [] },
  [Step.RetireOldCertificate]: { parse: parseRetireCertificateInput, optional: ['pacedUntil', 'retryCount'] },
  [Step.RollBack]: { parse: parseRollBackInput, optional: ['failedStep', 'pacedUntil', 'retryCount'] },
  [Step.RecordFailure]: { parse: parseRecordFailureInput, optional: ['failedStep'] },
  [Step.CheckClaimHolder]: { parse: parseReleaseClaimInput, optional: [] },
};

describe('what each Lambda state sends', () => {
  it('covers every Lambda state', () => {
    const lambdaStates = states.filter(([, state]) => state.Resource?.startsWith('arn:aws:states:::lambda:invoke')).map(([name]) => name);
    expect(lambdaStates.sort()).toEqual(Object.keys(readers).sort());
  });

  it.each(Object.keys(readers))('is everything the function of "%s" reads, and it reads everything sent', (name) => {
    const state = definition.States[name];
    const payload = payloadOf(state);
    const { parse, optional } = readers[name];

    // Everything the function needs is sent.
    expect(() => parse(payload)).not.toThrow();
    // Every field sent is read: leaving a required one out is an InvalidInput.
    for (const field of Object.keys(payload).filter((key) => !optional.includes(key))) {
      const without = { ...payload };
      delete without[field];
      expect(() => parse(without)).toThrow(expect.objectContaining({ name: 'InvalidInput' }));
    }
  });
});
