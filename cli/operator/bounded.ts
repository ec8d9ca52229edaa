/**
 * Bounded concurrency and backoff for the commands that fan out over a fleet (retry, expiring).
 * AWS IoT's certificate APIs and StartExecution are throttled per account, so the CLI keeps a
 * few calls in flight and backs off on throttling instead of failing the whole run.
 */
export type Sleep = (ms: number) => Promise<void>;

export const realSleep: Sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const THROTTLING = new Set([
  'ThrottlingException',
  'TooManyRequestsException',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'Throttling',
]);

export function isThrottling(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { name, $metadata } = error as { name?: unknown; $metadata?: { httpStatusCode?: number } };
  return (typeof name === 'string' && THROTTLING.has(name)) || $metadata?.httpStatusCode === 429;
}

export interface BackoffOptions {
  /** Calls in all, the first included. */
  attempts: number;
  baseMs: number;
  maxMs: number;
  sleep: Sleep;
  random: () => number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { attempts: 6, baseMs: 250, maxMs: 8000, sleep: realSleep, random: Math.random };

/** Calls `fn` again after a full-jitter exponential pause while it is throttled; other errors pass through. */
export async function withBackoff<T>(fn: () => Promise<T>, options: Partial<BackoffOptions> = {}): Promise<T> {
  const { attempts, baseMs, maxMs, sleep, random } = { ...DEFAULT_BACKOFF, ...options };
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (!isThrottling(error) || attempt >= attempts) throw error;
      await sleep(Math.floor(random() * Math.min(maxMs, baseMs * 2 ** (attempt - 1))));
    }
  }
}

/** Maps `items` through `fn` with at most `limit` calls in flight; results keep the input order. */
export async function mapBounded<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
  onSettled?: () => void,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index], index);
      onSettled?.();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}
