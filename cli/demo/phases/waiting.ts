/** The demo's small waiting primitives, shared by its phases. */
export class DemoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DemoError';
  }
}

/** Runs `work` over `items` with at most `limit` in flight. */
export async function mapLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: Math.min(limit, queue.length) }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) await work(item);
    }),
  );
}

/** Polls `condition` until it holds, the deadline passes (DemoError) or the run is stopped. */
export async function until(condition: () => boolean, deadline: number, what: string, signal?: AbortSignal): Promise<void> {
  while (!condition()) {
    if (signal?.aborted) throw new DemoError('stopped');
    if (Date.now() > deadline) throw new DemoError(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
