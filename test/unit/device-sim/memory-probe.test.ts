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
    // Another thread burns 300 ms of its own CPU (counted by the same clock, so a loaded machine
    // only makes it take longer) while this one waits on it.
    const burn = String.raw`
      const { readFileSync } = require('node:fs');
      const own = () => { const s = readFileSync('/proc/thread-self/stat', 'utf8'); const f = s.slice(s.lastIndexOf(')') + 2).split(' '); return (Number(f[11]) + Number(f[12])) * 10; };
      const start = own();
      while (own() - start < 300);`;
    const worker = new Worker(burn, { eval: true });
    await new Promise((resolve) => worker.once('exit', resolve));
    const whileOtherBusy = (threadCpuMs() as number) - before;
    // Then this thread burns until its own clock has moved 300 ms (or 20 s have passed).
    const deadline = Date.now() + 20_000;
    while ((threadCpuMs() as number) - before - whileOtherBusy < 300 && Date.now() < deadline);
    const own = (threadCpuMs() as number) - before - whileOtherBusy;
    expect(whileOtherBusy).toBeLessThan(200);
    expect(own).toBeGreaterThanOrEqual(300);
  }, 30_000);

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
