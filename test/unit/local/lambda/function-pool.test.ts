import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FunctionPool, type FunctionConfig } from '../../../../local/lambda/function-pool';

/**
 * Idle sandboxes are reclaimed as Lambda reclaims execution environments: a worker idle for
 * `idleMs` ends, the next invocation starts a new one (a cold start), and a busy worker is never
 * ended for being idle. Real worker threads running a tiny ESM bundle.
 */
const COUNTER = `
  let invocations = 0;
  export const handler = async (event) => {
    invocations += 1;
    if (event.sleepMs) await new Promise((resolve) => setTimeout(resolve, event.sleepMs));
    return { invocations };
  };`;

const until = async (condition: () => boolean, timeoutMs = 10_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

describe('FunctionPool idle sandboxes', () => {
  let dir: string;
  const pools: FunctionPool[] = [];

  const pool = (overrides: Partial<FunctionConfig>): FunctionPool => {
    const config: FunctionConfig = {
      name: 'counter',
      arn: 'arn:aws:lambda:us-east-1:000000000000:function:counter',
      bundlePath: join(dir, 'counter.mjs'),
      handlerName: 'handler',
      environment: {},
      timeoutSeconds: 10,
      memoryMb: 128,
      maxConcurrency: 2,
      ...overrides,
    };
    const created = new FunctionPool(config, undefined, () => undefined);
    pools.push(created);
    return created;
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-pool-'));
    writeFileSync(join(dir, 'counter.mjs'), COUNTER);
  });

  afterAll(async () => {
    await Promise.all(pools.map((p) => p.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('ends a sandbox idle for idleMs, and the next invocation is a cold start in a new one', async () => {
    // Prepare
    const counter = pool({ idleMs: 300 });
    await expect(counter.invoke({})).resolves.toEqual({ ok: true, payload: { invocations: 1 } });
    await expect(counter.invoke({})).resolves.toEqual({ ok: true, payload: { invocations: 2 } });
    expect(counter.sandboxCount).toBe(1);
    // Act
    await until(() => counter.sandboxCount === 0);
    const after = await counter.invoke({});
    // Assess: a fresh module (its counter starts again), in a second sandbox.
    expect(after).toEqual({ ok: true, payload: { invocations: 1 } });
    expect(counter.lifecycle).toEqual({ started: 2, reclaimed: 1 });
  });

  it('never ends a busy sandbox, however long it runs, and reclaims each of a burst once idle', async () => {
    // Prepare
    const counter = pool({ idleMs: 100 });
    // Act: two at once (two sandboxes), each busy longer than idleMs.
    const results = await Promise.all([counter.invoke({ sleepMs: 600 }), counter.invoke({ sleepMs: 600 })]);
    // Assess
    expect(results).toEqual([
      { ok: true, payload: { invocations: 1 } },
      { ok: true, payload: { invocations: 1 } },
    ]);
    expect(counter.lifecycle.reclaimed).toBe(0);
    await until(() => counter.sandboxCount === 0);
    expect(counter.lifecycle).toEqual({ started: 2, reclaimed: 2 });
  });

  it('keeps a sandbox that is used again within idleMs warm', async () => {
    // Prepare
    const counter = pool({ idleMs: 1_000 });
    // Act: invocations 200 ms apart, for longer than idleMs in total.
    let last: unknown;
    for (let i = 0; i < 8; i++) {
      last = await counter.invoke({});
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    // Assess
    expect(last).toEqual({ ok: true, payload: { invocations: 8 } });
    expect(counter.lifecycle).toEqual({ started: 1, reclaimed: 0 });
  });

  it('keeps sandboxes until stop when idleMs is 0', async () => {
    // Prepare
    const counter = pool({ idleMs: 0 });
    await counter.invoke({});
    // Act
    await new Promise((resolve) => setTimeout(resolve, 400));
    // Assess
    expect(counter.sandboxCount).toBe(1);
    expect(counter.lifecycle).toEqual({ started: 1, reclaimed: 0 });
  });
});
