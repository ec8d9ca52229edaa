import { readFileSync } from 'node:fs';
import { getHeapStatistics } from 'node:v8';
import { BroadcastChannel, threadId } from 'node:worker_threads';

/**
 * Where a process's memory goes, thread by thread. Every thread of the local runtime's process
 * (the main thread, each Lambda worker, each fleet thread) keeps the high-water marks of its own
 * V8 heap and of the off-heap memory its isolate accounts for (Buffers, TLS and crypto objects),
 * and answers a question on one BroadcastChannel with them. No thread's event loop is kept alive
 * by it, and nothing goes through the runtime's own message ports. The Lambda workers answer with
 * the same shape from local/lambda/worker-source.ts (a string: it cannot import this file).
 */
export const MEMORY_PROBE_CHANNEL = 'rotor:memory-probe';

/** What a thread says of itself, in bytes. Peaks are sampled every `MEMORY_PROBE_SAMPLE_MS`. */
export interface ThreadMemory {
  /** `main`, `fleet`, or `lambda:<function name>`. */
  kind: string;
  threadId: number;
  heapBytes: number;
  peakHeapBytes: number;
  externalBytes: number;
  peakExternalBytes: number;
  /** CPU time this thread has used (user + system, ms), from Linux's /proc/thread-self/stat; undefined elsewhere. */
  cpuMs?: number;
}

export type MemoryProbeMessage = { type: 'ask'; id: number } | ({ type: 'answer'; id: number } & ThreadMemory);

export const MEMORY_PROBE_SAMPLE_MS = 250;

/** The committed V8 heap (what the heap holds of the RSS) and the isolate's external memory. */
function sample(): { heap: number; external: number } {
  const stats = getHeapStatistics();
  return { heap: stats.total_heap_size, external: stats.external_memory };
}

/**
 * The CPU time of the calling thread (user + system, ms): fields 14 and 15 of
 * /proc/thread-self/stat, in clock ticks of 10 ms. Node 20 has no per-thread CPU clock of its
 * own (process.cpuUsage is the whole process's), so where /proc is missing this is undefined.
 * The Lambda workers read theirs the same way (local/lambda/worker-source.ts).
 */
export function threadCpuMs(): number | undefined {
  try {
    const stat = readFileSync('/proc/thread-self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return undefined;
  }
}

/** Starts sampling this thread and answering on the channel; returns the stop function. */
export function answerMemoryProbes(kind: string): () => void {
  let peakHeap = 0;
  let peakExternal = 0;
  const record = (): { heap: number; external: number } => {
    const now = sample();
    peakHeap = Math.max(peakHeap, now.heap);
    peakExternal = Math.max(peakExternal, now.external);
    return now;
  };
  record();
  const timer = setInterval(record, MEMORY_PROBE_SAMPLE_MS);
  timer.unref();
  const channel = new BroadcastChannel(MEMORY_PROBE_CHANNEL);
  channel.unref();
  channel.onmessage = (event) => {
    const message = (event as { data: unknown }).data as MemoryProbeMessage | undefined;
    if (message?.type !== 'ask') return;
    const now = record();
    const answer: MemoryProbeMessage = {
      type: 'answer',
      id: message.id,
      kind,
      threadId,
      heapBytes: now.heap,
      peakHeapBytes: peakHeap,
      externalBytes: now.external,
      peakExternalBytes: peakExternal,
    };
    const cpuMs = threadCpuMs();
    if (cpuMs !== undefined) answer.cpuMs = cpuMs;
    channel.postMessage(answer);
  };
  return () => {
    clearInterval(timer);
    channel.close();
  };
}

/**
 * Asks every thread that answers probes (this one too, if it does) and gathers the answers
 * that arrive within `waitMs`. A BroadcastChannel does not deliver to its own sender, so the
 * asking channel is a second one.
 */
export async function askThreadMemory(waitMs = 500): Promise<ThreadMemory[]> {
  const channel = new BroadcastChannel(MEMORY_PROBE_CHANNEL);
  const id = Math.floor(Math.random() * 2 ** 31);
  const answers = new Map<number, ThreadMemory>();
  channel.onmessage = (event) => {
    const message = (event as { data: unknown }).data as MemoryProbeMessage | undefined;
    if (message?.type !== 'answer' || message.id !== id) return;
    const { type: _type, id: _id, ...memory } = message;
    answers.set(memory.threadId, memory);
  };
  channel.postMessage({ type: 'ask', id } satisfies MemoryProbeMessage);
  await new Promise((resolve) => setTimeout(resolve, waitMs));
  channel.close();
  return [...answers.values()].sort((a, b) => a.threadId - b.threadId);
}

/**
 * Another process's peak RSS (Linux's VmHWM, bytes) and CPU time so far (user + system, ms),
 * from /proc; undefined where it is gone or the system does not say. For child processes,
 * which neither ru_maxrss nor the thread probes above include.
 */
export function processFigures(pid: number): { peakRssBytes?: number; cpuMs?: number } {
  const figures: { peakRssBytes?: number; cpuMs?: number } = {};
  try {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    if (match) figures.peakRssBytes = Number(match[1]) * 1024;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    figures.cpuMs = (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    // Gone, or not Linux.
  }
  return figures;
}
