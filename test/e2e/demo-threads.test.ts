import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDemo, type DemoReport } from '../../cli/demo/index';
import { FleetThreadError, ThreadedFleet } from '../../device-sim/fleet-thread';
import { describeWithBundles as bundlesDescribe } from '../fixtures/bundles.js';
import { MemoryWatch, type MemoryBreakdown } from '../../scripts/bench-memory';

/**
 * The bench runs the simulated devices on worker threads (device-sim/fleet-thread.ts). The
 * same demo, end to end, with the fleet split over two threads: every device rotates, the
 * watcher hears of the devices' key removals across the thread boundary, and nothing is left
 * running. Needs the function bundles (`make build`).
 */
const describeWithBundles = bundlesDescribe('test/e2e/demo-threads.test.ts');

describe('ThreadedFleet input', () => {
  it('refuses a thread count that is not a whole number ≥ 1', () => {
    const endpoint = { host: '127.0.0.1', port: 1, caPem: '' };
    expect(() => new ThreadedFleet({ endpoint, devices: [], threads: 0 })).toThrow(FleetThreadError);
    expect(() => new ThreadedFleet({ endpoint, devices: [], threads: 1.5 })).toThrow(/whole number/);
  });

  it('refuses fleet threads out of range before the demo starts anything', async () => {
    const io = { out: () => undefined, progressStream: process.stdout, tty: false };
    await expect(runDemo({ devices: 2, fleetThreads: 17 }, io)).rejects.toThrow(/fleet threads/);
  });
});

describeWithBundles('rotor demo with the devices on two threads', () => {
  let dir: string;
  let report: DemoReport;
  let memory: MemoryBreakdown;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-demo-threads-'));
    const watch = new MemoryWatch(200);
    watch.start();
    report = await runDemo(
      { devices: 6, timeScale: 0.01, fleetThreads: 2, dataDir: join(dir, 'state') },
      { out: () => undefined, progressStream: process.stdout, tty: false },
    );
    memory = await watch.stop();
  }, 120_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('rotates every device and passes every check', () => {
    expect(report.invariantViolations).toEqual([]);
    expect(report).toMatchObject({ devices: 6, rotated: 6, failed: {}, unfinished: 0 });
  });

  it('reports the timing figures the bench prints', () => {
    expect(Object.keys(report.stepMs)).toEqual(expect.arrayContaining(['Request CSR', 'Issue certificate', 'Deliver certificate']));
    expect(report.stepMs['Request CSR'].count).toBe(6);
    expect(report.lambda['rotor-device-message'].invocations).toBe(12);
    expect(report.mainThreadBusy).toBeGreaterThan(0);
    expect(report.mainThreadBusy).toBeLessThanOrEqual(1);
    // Each rotated device deleted its old key; the threads told the watcher every time.
    expect(report.invariantChecks.keyRemovalChecks).toBeGreaterThanOrEqual(6);
    // The threads also reported every store's keys from its first load: only the final pass read the disk.
    expect(report.invariantChecks.diskChecks).toBe(6);
    expect(report.invariantChecks.deviceChecks).toBeGreaterThan(6);
  });

  it('breaks the memory down by thread: the main thread, both fleet threads and the Lambda workers each answer', () => {
    const kinds = memory.threads.map((thread) => thread.kind);
    expect(kinds.filter((kind) => kind === 'main')).toHaveLength(1);
    expect(kinds.filter((kind) => kind === 'fleet')).toHaveLength(2);
    expect(kinds).toEqual(expect.arrayContaining(['lambda:rotor-request-csr', 'lambda:rotor-issue-certificate', 'lambda:rotor-device-message']));
    expect(memory.mainHeapMiB).toBeGreaterThan(0);
    expect(memory.fleetHeapMiB).toBeGreaterThan(0);
    expect(memory.workersHeapMiB).toBeGreaterThan(0);
    expect(memory.functions['rotor-request-csr'].workers).toBeGreaterThanOrEqual(1);
    for (const thread of memory.threads) expect(thread.peakHeapMiB).toBeGreaterThan(1);
  });
});
