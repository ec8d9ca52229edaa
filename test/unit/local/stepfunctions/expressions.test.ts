import { evaluateRule } from '../../../../local/stepfunctions/choice.js';
import { errorMatches } from '../../../../local/stepfunctions/errors.js';
import { retryDelaySeconds } from '../../../../local/stepfunctions/engine.js';
import { evaluateIntrinsic } from '../../../../local/stepfunctions/intrinsics.js';
import { applyResultPath, readPath } from '../../../../local/stepfunctions/paths.js';

const scope = { input: { a: { b: [10, 20] }, s: 'x{y}', n: 2, when: '2026-01-01T00:00:00Z' }, context: { State: { Name: 'S' } }, variables: { v: { k: 'kv' } } };

describe('paths', () => {
  it('reads input, context and variables, and raises States.Runtime for a missing path', () => {
    expect(readPath('$.a.b[1]', scope)).toBe(20);
    expect(readPath("$['a']['b'][0]", scope)).toBe(10);
    expect(readPath('$$.State.Name', scope)).toBe('S');
    expect(readPath('$v.k', scope)).toBe('kv');
    expect(readPath('$..b', scope)).toEqual([[10, 20]]);
    expect(() => readPath('$.nope', scope)).toThrow(expect.objectContaining({ error: 'States.Runtime' }));
    expect(() => readPath('$undefinedVar', scope)).toThrow(expect.objectContaining({ error: 'States.Runtime' }));
  });

  it('applies ResultPath without touching the input, and refuses to write through a scalar', () => {
    const input = { a: 1 };
    expect(applyResultPath(input, '$.x.y', 5)).toEqual({ a: 1, x: { y: 5 } });
    expect(input).toEqual({ a: 1 });
    expect(applyResultPath(input, null, 5)).toBe(input);
    expect(() => applyResultPath(input, '$.a.b', 5)).toThrow(expect.objectContaining({ error: 'States.ResultPathMatchFailure' }));
  });
});

describe('intrinsics', () => {
  it('evaluates nested calls, escapes and hashes', () => {
    expect(evaluateIntrinsic("States.Format('{} \\{lit\\} {}', $.n, States.ArrayLength($.a.b))", scope)).toBe('2 {lit} 2');
    expect(evaluateIntrinsic('States.JsonToString($.a)', scope)).toBe('{"b":[10,20]}');
    expect(evaluateIntrinsic("States.Hash('abc', 'SHA-256')", scope)).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(evaluateIntrinsic("States.StringSplit('a,b;c', ',;')", scope)).toEqual(['a', 'b', 'c']);
    expect(evaluateIntrinsic('States.MathAdd($.n, -3)', scope)).toBe(-1);
  });

  it('fails with States.IntrinsicFailure on bad arguments', () => {
    expect(() => evaluateIntrinsic("States.Format('{} {}', 1)", scope)).toThrow(expect.objectContaining({ error: 'States.IntrinsicFailure' }));
    expect(() => evaluateIntrinsic("States.StringToJson('{bad')", scope)).toThrow(expect.objectContaining({ error: 'States.IntrinsicFailure' }));
    expect(() => evaluateIntrinsic('States.Nope()', scope)).toThrow(expect.objectContaining({ error: 'States.IntrinsicFailure' }));
  });
});

describe('choice rules', () => {
  it('compares by type, with Path variants, wildcards and type tests', () => {
    expect(evaluateRule({ Variable: '$.n', NumericGreaterThanEqualsPath: '$.a.b[0]' }, scope)).toBe(false);
    expect(evaluateRule({ Variable: '$.n', NumericLessThanPath: '$.a.b[0]' }, scope)).toBe(true);
    expect(evaluateRule({ Variable: '$.n', StringEquals: '2' }, scope)).toBe(false);
    expect(evaluateRule({ Variable: '$.s', StringMatches: 'x*' }, scope)).toBe(true);
    expect(evaluateRule({ Variable: '$.when', TimestampLessThan: '2026-06-01T00:00:00Z' }, scope)).toBe(true);
    expect(evaluateRule({ Not: { Variable: '$.missing', IsPresent: true } }, scope)).toBe(true);
    expect(evaluateRule({ Or: [{ Variable: '$.n', IsString: true }, { Variable: '$v.k', StringEquals: 'kv' }] }, scope)).toBe(true);
    expect(() => evaluateRule({ Variable: '$.missing', StringEquals: 'x' }, scope)).toThrow(expect.objectContaining({ error: 'States.Runtime' }));
  });
});

describe('retry and catch matching', () => {
  it("follows AWS's wildcard rules", () => {
    expect(errorMatches(['States.ALL'], 'Anything')).toBe(true);
    expect(errorMatches(['States.ALL'], 'States.Runtime')).toBe(false);
    expect(errorMatches(['States.TaskFailed'], 'States.Timeout')).toBe(false);
    expect(errorMatches(['States.TaskFailed'], 'Lambda.ServiceException')).toBe(true);
    expect(errorMatches(['States.Timeout'], 'States.HeartbeatTimeout')).toBe(true);
  });

  it('computes backoff capped by MaxDelaySeconds, with FULL jitter scaling it', () => {
    const retrier = { ErrorEquals: ['X'], IntervalSeconds: 300, BackoffRate: 2, MaxDelaySeconds: 1000 };
    expect([0, 1, 2, 3].map((n) => retryDelaySeconds(retrier, n, () => 0.5))).toEqual([300, 600, 1000, 1000]);
    expect(retryDelaySeconds({ ...retrier, JitterStrategy: 'FULL' }, 1, () => 0.25)).toBe(150);
  });
});
