import { Worker } from 'node:worker_threads';
import { answerMemoryProbes, askThreadMemory, threadCpuMs } from '../../../device-sim/memory-probe';

/**
 * The probe every thread of the local runtime's process answers (the bench's memory breakdown).
 * Across threads it is proven by e2e/demo-threads; here, what one thread says of itself.
 */
describe('memory probe', () => {
  it('answers with its own heap and off-heap high-water marks, peaks never below the current figures', async () => {
    // Prepare
    const stop = answerMemoryProbes('fleet');
    try {
      const grown = Array.from({ length: 20_000 }, (_, i) => ({ i, text: `entry ${i}`.repeat(8) }));

      // Act
      const answers = await askThreadMemory(200);

      // Assess
      expect(grown).toHaveLength(20_000);
      expect(answers).toHaveLength(1);
      const [self] = answers;
      expect(self.kind).toBe('fleet');
      expect(self.heapBytes).toBeGreaterThan(1024 * 1024);
      expect(self.peakHeapBytes).toBeGreaterThanOrEqual(self.heapBytes);
      expect(self.peakExternalBytes).toBeGreaterThanOrEqual(self.externalBytes);
    } finally {
      stop();
    }
  });

  it('stops answering once stopped', async () => {
    const stop = answerMemoryProbes('main');
    stop();
    await expect(askThreadMemory(200)).resolves.toEqual([]);
  });

  it("reads this thread's own CPU time: another thread's busy loop does not move it, its own does", async () => {
    const before = threadCpuMs();
    if (before === undefined) return expect(process.platform).not.toBe('linux');
    // Another thread burns ~300 ms of CPU while this one waits on it.
    const worker = new Worker('const end = Date.now() + 300; while (Date.now() < end);', { eval: true });
    await new Promise((resolve) => worker.once('exit', resolve));
    const whileOtherBusy = (threadCpuMs() as number) - before;
    const end = Date.now() + 300;
    while (Date.now() < end);
    const afterOwn = (threadCpuMs() as number) - before;
    expect(whileOtherBusy).toBeLessThan(200);
    expect(afterOwn - whileOtherBusy).toBeGreaterThanOrEqual(150);
  });

  it('answers with its CPU time where the system tells it', async () => {
    const stop = answerMemoryProbes('main');
    try {
      const [self] = await askThreadMemory(200);
      if (process.platform === 'linux') expect(self.cpuMs).toEqual(expect.any(Number));
    } finally {
      stop();
    }
  });
});
