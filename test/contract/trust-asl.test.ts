import {
  DYNAMODB_TRANSIENT_ERRORS,
  ErrorName,
  LAMBDA_CRASH_ERRORS,
  StatesError,
  TRANSIENT_ERRORS,
  TRUST_SK,
  TrustStatus,
  TrustStep,
} from '../../domain/index.js';
import { parseTrustRecordInput } from '../../functions/trust-record.js';
import { parseTrustRequestInput } from '../../functions/trust-request.js';
import { exampleDeployment, loadWiring, renderStateMachine, templatePlaceholders } from '../../wiring/index.js';

// asl-validator ships CommonJS without types.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const validateAsl = require('asl-validator') as (definition: unknown) => { isValid: boolean; errors: unknown[]; errorsText: () => string };

/**
 * The trust-update state machine (protocol v1.2) held to domain/trust-update.ts and the wiring,
 * as test/contract/asl.test.ts holds the rotation's.
 */
interface State {
  Type: string;
  Resource?: string;
  Parameters?: Record<string, unknown>;
  Retry?: { ErrorEquals: string[] }[];
  Catch?: { ErrorEquals: string[]; Next: string }[];
}

const wiring = loadWiring();
const spec = wiring.trustStateMachine;
const definition = JSON.parse(renderStateMachine(exampleDeployment(), wiring, spec)) as { States: Record<string, State> };
const states = Object.entries(definition.States);
const BUNDLE_ID = 'c'.repeat(64);

const executionState = {
  thingName: 'sensor-1',
  bundleId: BUNDLE_ID,
  bundle: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
  pushId: 'push-20261130T220000Z',
  answer: { bundleId: BUNDLE_ID, certificateId: 'a'.repeat(64) },
  error: { Error: 'States.Timeout', Cause: '' },
};
const contextObject = {
  Execution: { Name: 'sensor-1-t0123456789abcdef', Id: 'arn:aws:states:us-east-1:123456789012:execution:rotor-trust-update:sensor-1-t0' },
  Task: { Token: 'task-token' },
  State: { RetryCount: 0 },
};

function resolvePath(path: string): unknown {
  const walk = (root: unknown, rest: string): unknown => rest.split('.').filter(Boolean).reduce<unknown>((value, key) => (value as Record<string, unknown> | undefined)?.[key], root);
  if (path.startsWith('$$.')) return walk(contextObject, path.slice(3));
  if (path.startsWith('$.')) return walk(executionState, path.slice(2));
  throw new Error(`unsupported path ${path}`);
}

function payloadOf(state: State): Record<string, unknown> {
  const payload = (state.Parameters?.Payload ?? {}) as Record<string, string>;
  return Object.fromEntries(Object.entries(payload).map(([key, path]) => (key.endsWith('.$') ? [key.slice(0, -2), resolvePath(path)] : [key, path])));
}

describe('the trust-update state machine', () => {
  it('is valid ASL once rendered', () => {
    const result = validateAsl(definition);
    expect(result.errorsText()).toBe('');
    expect(result.isValid).toBe(true);
  });

  it('has exactly the states domain TrustStep names', () => {
    expect(states.map(([name]) => name).sort()).toEqual([...Object.values(TrustStep)].sort());
  });

  it('uses every wiring substitution as a placeholder, and no other', () => {
    expect(templatePlaceholders(wiring, spec)).toEqual(Object.keys(spec.substitutions).sort());
  });

  it('invokes only functions the wiring defines', () => {
    for (const ref of Object.values(spec.substitutions).filter((r) => r.startsWith('function:'))) {
      expect(wiring.functions).toHaveProperty([ref.slice('function:'.length)]);
    }
  });

  it('matches only error names the domain defines', () => {
    const known = new Set<string>([...Object.values(ErrorName), ...Object.values(StatesError), ...TRANSIENT_ERRORS, ...DYNAMODB_TRANSIENT_ERRORS, ...LAMBDA_CRASH_ERRORS]);
    const used = states.flatMap(([, state]) => [...(state.Retry ?? []), ...(state.Catch ?? [])].flatMap((rule) => rule.ErrorEquals));
    expect(used.filter((name) => !known.has(name))).toEqual([]);
  });

  it('claims the thing trust record (sk = trust, trustStatus IN_PROGRESS), never its rotation record', () => {
    const claim = definition.States[TrustStep.ClaimTrustUpdate];
    const parameters = claim.Parameters as { Key: { sk: { S: string } }; ExpressionAttributeValues: Record<string, { S?: string }>; UpdateExpression: string };
    expect(parameters.Key.sk.S).toBe(TRUST_SK);
    expect(parameters.ExpressionAttributeValues[':inProgress'].S).toBe(TrustStatus.InProgress);
    // `status` would put the record in the by-status index of rotations.
    expect(parameters.UpdateExpression).not.toMatch(/#status|\bstatus\b/);
    expect(claim.Catch?.[0]).toEqual(expect.objectContaining({ ErrorEquals: ['DynamoDB.ConditionalCheckFailedException'], Next: TrustStep.AlreadyUpdating }));
  });

  it('sends trust_req again on a timeout, then records the failure and escalates it once', () => {
    const send = definition.States[TrustStep.SendTrustRequest];
    expect(send.Resource).toBe('arn:aws:states:::lambda:invoke.waitForTaskToken');
    expect(send.Retry?.[0]).toEqual(expect.objectContaining({ ErrorEquals: ['States.Timeout'], MaxAttempts: wiring.settings.trustRequestRetries.default }));
    expect(send.Catch?.map((c) => c.Next)).toEqual([TrustStep.RecordTrustFailure]);
    const escalations = states.filter(([, state]) => state.Resource === 'arn:aws:states:::sns:publish');
    expect(escalations.map(([name]) => name)).toEqual([TrustStep.EscalateTrustFailure]);
  });

  const readers: Record<string, (event: unknown) => unknown> = {
    [TrustStep.SendTrustRequest]: parseTrustRequestInput,
    [TrustStep.RecordTrustUpdated]: parseTrustRecordInput,
    [TrustStep.RecordTrustFailure]: parseTrustRecordInput,
  };

  it('covers every Lambda state with its function parser', () => {
    const lambdaStates = states.filter(([, state]) => state.Resource?.startsWith('arn:aws:states:::lambda:invoke')).map(([name]) => name);
    expect(lambdaStates.sort()).toEqual(Object.keys(readers).sort());
  });

  it.each(Object.keys(readers))('sends "%s" what its function reads', (name) => {
    const payload = payloadOf(definition.States[name]);
    expect(() => readers[name](payload)).not.toThrow();
  });
});
