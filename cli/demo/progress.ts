import { SingleBar } from 'cli-progress';

/** Where the fleet stands, as the progress display shows it. */
export interface ProgressCounts {
  total: number;
  notStarted: number;
  inFlight: number;
  rotated: number;
  failed: number;
}

export interface ProgressDisplay {
  update(counts: ProgressCounts): void;
  stop(): void;
}

/**
 * A live bar on a terminal; on anything else (CI logs, a pipe) one plain line at most every
 * `intervalMs` and when the numbers change, so a log stays readable.
 */
export function progressDisplay(options: { tty: boolean; stream: NodeJS.WritableStream; out: (line: string) => void; intervalMs?: number; now?: () => number }): ProgressDisplay {
  const now = options.now ?? Date.now;
  const started = now();
  if (options.tty) {
    const bar = new SingleBar({
      format: 'rotating |{bar}| {value}/{total} done | in flight {inFlight} | rotated {rotated} | failed {failed} | {duration_formatted}',
      stream: options.stream,
      hideCursor: true,
      clearOnComplete: false,
    });
    let began = false;
    return {
      update(c) {
        const payload = { inFlight: c.inFlight, rotated: c.rotated, failed: c.failed };
        if (!began) {
          bar.start(c.total, c.rotated + c.failed, payload);
          began = true;
        } else bar.update(c.rotated + c.failed, payload);
      },
      stop() {
        if (began) bar.stop();
      },
    };
  }
  let last = '';
  let unprinted: string | undefined;
  let lastAt = -Infinity;
  const interval = options.intervalMs ?? 2_000;
  return {
    update(c) {
      const line = `${c.rotated + c.failed}/${c.total} done: rotated ${c.rotated}, failed ${c.failed}, in flight ${c.inFlight}, not started ${c.notStarted}`;
      const at = now();
      if (line === last) return;
      if (at - lastAt < interval) {
        unprinted = line;
        return;
      }
      unprinted = undefined;
      last = line;
      lastAt = at;
      options.out(`[${((at - started) / 1000).toFixed(1)} s] ${line}`);
    },
    stop() {
      // The last numbers are the ones that matter: print them even if the interval has not passed.
      if (unprinted !== undefined) options.out(`[${((now() - started) / 1000).toFixed(1)} s] ${unprinted}`);
      unprinted = undefined;
    },
  };
}
