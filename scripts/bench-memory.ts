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
  /** Lambda workers' peak heaps summed per function, and how many workers each had. */
  functions: Record<string, { workers: number; heapMiB: number }>;
  threads: Array<{ kind: string; threadId: number; peakHeapMiB: number; peakExternalMiB: number }>;
}

const MiB = 2 ** 20;
const mib = (bytes: number): number => Math.round((bytes / MiB) * 10) / 10;

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
    const functions: MemoryBreakdown['functions'] = {};
    for (const thread of threads) {
      if (!thread.kind.startsWith('lambda:')) continue;
      const name = thread.kind.slice('lambda:'.length);
      const entry = (functions[name] ??= { workers: 0, heapMiB: 0 });
      entry.workers += 1;
      entry.heapMiB = mib(entry.heapMiB * MiB + thread.peakHeapBytes);
    }
    return {
      mainHeapMiB: mib(heapOf((kind) => kind === 'main')),
      workersHeapMiB: mib(heapOf((kind) => kind.startsWith('lambda:'))),
      fleetHeapMiB: mib(heapOf((kind) => kind === 'fleet')),
      externalMiB: mib(threads.reduce((sum, t) => sum + t.peakExternalBytes, 0)),
      functions,
      threads: threads.map((t) => ({ kind: t.kind, threadId: t.threadId, peakHeapMiB: mib(t.peakHeapBytes), peakExternalMiB: mib(t.peakExternalBytes) })),
    };
  }
}
