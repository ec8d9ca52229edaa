import { answerMemoryProbes, askThreadMemory } from '../../../device-sim/memory-probe';

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
});
