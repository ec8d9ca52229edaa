import { CaRolloverErrorName, CaRolloverStep, emptyTally, type PassVerdict } from '../../domain/ca-rollover.js';
import { LAMBDA_CRASH_ERRORS, StatesError, TRANSIENT_ERRORS } from '../../domain/index.js';
import { parseDeactivateOldCaEvent } from '../../functions/ca-deactivate-old.js';
import { parseMoveDevicesEvent } from '../../functions/ca-move-devices.js';
import { parseSwitchIssuingEvent } from '../../functions/ca-switch-issuing.js';
import { parseVerifyNewCaEvent } from '../../functions/ca-verify-new.js';
import { exampleDeployment, loadWiring, renderStateMachine, templatePlaceholders } from '../../wiring/index.js';

// asl-validator ships CommonJS without types.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const validateAsl = require('asl-validator') as (definition: unknown) => { isValid: boolean; errors: unknown[]; errorsText: () => string };

interface State {
  Type: string;
  Resource?: string;
  Parameters?: Record<string, unknown>;
  Retry?: { ErrorEquals: string[] }[];
  Catch?: { ErrorEquals: string[] }[];
  Choices?: { Variable: string; StringEquals?: string; Next: string }[];
}

const wiring = loadWiring();
const machine = wiring.caRollover;
const deployment = exampleDeployment();
const definition = JSON.parse(renderStateMachine(deployment, wiring, machine)) as { States: Record<string, State> };
const states = Object.entries(definition.States);

describe('the ca-rollover state machine', () => {
  it('is valid ASL once rendered', () => {
    const result = validateAsl(definition);
    expect(result.errorsText()).toBe('');
    expect(result.isValid).toBe(true);
  });

  it('has exactly the states domain CaRolloverStep names', () => {
    expect(states.map(([name]) => name).sort()).toEqual([...Object.values(CaRolloverStep)].sort());
  });

  it('matches only error names the domain defines', () => {
    const known = new Set<string>([...Object.values(CaRolloverErrorName), ...Object.values(StatesError), ...TRANSIENT_ERRORS, ...LAMBDA_CRASH_ERRORS]);
    const used = states.flatMap(([, state]) => [...(state.Retry ?? []), ...(state.Catch ?? [])].flatMap((rule) => rule.ErrorEquals));
    expect(used).toContain(CaRolloverErrorName.OldCaStillInUse);
    expect(used.filter((name) => !known.has(name))).toEqual([]);
  });

  it('uses every wiring substitution as a placeholder, and no other', () => {
    expect(templatePlaceholders(wiring, machine)).toEqual(Object.keys(machine.substitutions).sort());
  });

  it('invokes only the functions of its wiring substitutions, each defined in the wiring', () => {
    const invoked = states.filter(([, state]) => state.Resource === 'arn:aws:states:::lambda:invoke').map(([, state]) => state.Parameters?.FunctionName);
    const substituted = Object.values(machine.substitutions).filter((ref) => ref.startsWith('function:'));
    expect(invoked.sort()).toEqual(substituted.map((ref) => deployment.functionArn(ref.slice('function:'.length))).sort());
    for (const ref of substituted) expect(wiring.functions).toHaveProperty([ref.slice('function:'.length)]);
  });

  it("branches on exactly the verdicts Move devices returns, and escalates on any other", () => {
    const choice = definition.States[CaRolloverStep.DevicesLeft];
    const verdicts: PassVerdict[] = ['deactivate', 'wait'];
    expect((choice.Choices ?? []).map((rule) => rule.StringEquals).sort()).toEqual(verdicts.sort());
    expect((choice as unknown as { Default: string }).Default).toBe(CaRolloverStep.EscalateDevicesLeft);
  });
});

/** A plausible execution at each Lambda state, for resolving Payload paths. */
const cas = { oldCaCertificateId: 'a'.repeat(64), newCaCertificateId: 'b'.repeat(64), newPrivateCaArn: 'arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/11111111-2222-3333-4444-555555555555' };
const executionState = {
  oldCa: 'a'.repeat(64),
  newCa: cas.newPrivateCaArn,
  trigger: 'cli',
  cas: { value: cas },
  move: { page: { more: true, marker: 'm-2', tally: emptyTally() } },
};
const contextObject = {
  Execution: { Name: 'ca-rollover-0123456789abcdef01234567', Id: 'arn:aws:states:us-east-1:123456789012:execution:rotor-ca-rollover:ca-rollover-0123', StartTime: '2026-03-01T11:00:00.000Z' },
};

function resolvePath(path: string): unknown {
  const walk = (root: unknown, rest: string): unknown => rest.split('.').filter(Boolean).reduce<unknown>((value, key) => (value as Record<string, unknown> | undefined)?.[key], root);
  if (path.startsWith('$$.')) return walk(contextObject, path.slice(3));
  if (path === '$') return executionState;
  if (path.startsWith('$.')) return walk(executionState, path.slice(2));
  throw new Error(`unsupported path ${path}`);
}

function payloadOf(state: State): Record<string, unknown> {
  const payload = (state.Parameters?.Payload ?? {}) as Record<string, unknown>;
  return Object.fromEntries(Object.entries(payload).map(([key, path]) => (key.endsWith('.$') ? [key.slice(0, -2), resolvePath(path as string)] : [key, path])));
}

const readers: Record<string, { parse: (event: unknown) => unknown; optional: string[] }> = {
  [CaRolloverStep.VerifyNewCa]: { parse: parseVerifyNewCaEvent, optional: [] },
  [CaRolloverStep.SwitchIssuingCa]: { parse: parseSwitchIssuingEvent, optional: [] },
  [CaRolloverStep.MoveDevices]: { parse: parseMoveDevicesEvent, optional: ['pass'] },
  [CaRolloverStep.DeactivateOldCa]: { parse: parseDeactivateOldCaEvent, optional: [] },
};

describe('what each Lambda state of the rollover sends', () => {
  it('covers every Lambda state', () => {
    expect(states.filter(([, state]) => state.Resource === 'arn:aws:states:::lambda:invoke').map(([name]) => name).sort()).toEqual(Object.keys(readers).sort());
  });

  it.each(Object.keys(readers))('is everything the function of "%s" reads, and it reads everything sent', (name) => {
    const payload = payloadOf(definition.States[name]);
    const { parse, optional } = readers[name];
    expect(() => parse(payload)).not.toThrow();
    for (const field of Object.keys(payload).filter((key) => !optional.includes(key))) {
      const without = { ...payload };
      delete without[field];
      expect(() => parse(without)).toThrow(expect.objectContaining({ name: 'InvalidInput' }));
    }
  });
});
