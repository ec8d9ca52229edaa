import { answerMemoryProbes, askThreadMemory, type ThreadMemory } from '../device-sim/memory-probe.js';

/**
 * The bench's memory breakdown: where the process's peak RSS goes, thread by thread. Every
 * thread of the run keeps its own high-water marks (device-sim/memory-probe.ts); this asks them
 * every `everyMs` while the run lasts and keeps each thread's last answer, since the threads
 * are gone once the demo returns. A thread's peak heap is its committed V8 heap at its worst;
 * the sums add peaks that may not have coincided, so they bound the heaps' share of the peak
 * RSS from above. What is left of the RSS is native: thread stacks, V8's code space and
 * OpenSSL's and libuv's own allocations, which no isolate accounts for.
 */
export interface MemoryBreakdown {
  /** The main thread's peak heap: the local AWS (edge, engine, broker, CA) and the demo's watcher. */
  mainHeapMiB: number;
  /** The Lambda workers' peak heaps, summed. */
  workersHeapMiB: number;
  /** The fleet threads' peak heaps, summed (0 with the devices on the main thread). */
  fleetHeapMiB: number;
  /** Every thread's peak off-heap memory that its isolate accounts for (Buffers, TLS, crypto objects), summed. */
  externalMiB: number;
  /** Lambda workers' peak heaps summed per function, how many workers each had, and their CPU seconds (null: unknown). */
  functions: Record<string, { workers: number; heapMiB: number; cpuSeconds: number | null }>;
  /**
   * CPU seconds by thread, from each thread's last answer (Linux's /proc/thread-self/stat; null
   * where no thread could read it). A thread answers up to the bench's last question, just before
   * the runtime stops, so the end checks after it are not in these figures.
   */
  cpuSeconds: { main: number | null; workers: number | null; fleet: number | null };
  threads: Array<{ kind: string; threadId: number; peakHeapMiB: number; peakExternalMiB: number; cpuSeconds: number | null }>;
}

const MiB = 2 ** 20;
const mib = (bytes: number): number => Math.round((bytes / MiB) * 10) / 10;
const seconds = (ms: number): number => Math.round(ms / 100) / 10;

export class MemoryWatch {
  private readonly seen = new Map<number, ThreadMemory>();
  private timer: NodeJS.Timeout | undefined;
  private asking: Promise<void> | undefined;
  private readonly stopMain: () => void;

  constructor(private readonly everyMs = 2_000) {
    this.stopMain = answerMemoryProbes('main');
  }

  start(): void {
    this.timer = setInterval(() => void this.sample(), this.everyMs);
    this.timer.unref();
  }

  /** Asks once more, stops asking, and returns the breakdown. */
  async stop(): Promise<MemoryBreakdown> {
    clearInterval(this.timer);
    await this.sample();
    this.stopMain();
    return this.breakdown();
  }

  /** Asks every thread now (the bench does so just before the runtime stops). */
  sample(): Promise<void> {
    this.asking ??= askThreadMemory(300)
      .then((answers) => {
        for (const answer of answers) this.seen.set(answer.threadId, answer);
      })
      .finally(() => {
        this.asking = undefined;
      });
    return this.asking;
  }

  breakdown(): MemoryBreakdown {
    const threads = [...this.seen.values()];
    const heapOf = (match: (kind: string) => boolean): number => threads.filter((t) => match(t.kind)).reduce((sum, t) => sum + t.peakHeapBytes, 0);
    const cpuOf = (match: (kind: string) => boolean): number | null => {
      const matching = threads.filter((t) => match(t.kind));
      if (matching.length === 0 || matching.some((t) => t.cpuMs === undefined)) return null;
      return seconds(matching.reduce((sum, t) => sum + (t.cpuMs as number), 0));
    };
    const functions: MemoryBreakdown['functions'] = {};
    for (const thread of threads) {
      if (!thread.kind.startsWith('lambda:')) continue;
      const name = thread.kind.slice('lambda:'.length);
      const entry = (functions[name] ??= { workers: 0, heapMiB: 0, cpuSeconds: null });
      entry.workers += 1;
      entry.heapMiB = mib(entry.heapMiB * MiB + thread.peakHeapBytes);
      entry.cpuSeconds = cpuOf((kind) => kind === thread.kind);
    }
    return {
      mainHeapMiB: mib(heapOf((kind) => kind === 'main')),
      workersHeapMiB: mib(heapOf((kind) => kind.startsWith('lambda:'))),
      fleetHeapMiB: mib(heapOf((kind) => kind === 'fleet')),
      externalMiB: mib(threads.reduce((sum, t) => sum + t.peakExternalBytes, 0)),
      functions,
      cpuSeconds: { main: cpuOf((kind) => kind === 'main'), workers: cpuOf((kind) => kind.startsWith('lambda:')), fleet: cpuOf((kind) => kind === 'fleet') },
      threads: threads.map((t) => ({
        kind: t.kind,
        threadId: t.threadId,
        peakHeapMiB: mib(t.peakHeapBytes),
        peakExternalMiB: mib(t.peakExternalBytes),
        cpuSeconds: t.cpuMs === undefined ? null : seconds(t.cpuMs),
      })),
    };
  }
}
