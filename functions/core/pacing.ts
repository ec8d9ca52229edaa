import { InvalidInput } from '../../domain/index.js';
import { bucketOf, bucketDemand, CALL_PROFILE, MAX_IN_LAMBDA_WAIT_MS, type Bucket, type CallSite } from '../../domain/pacing/index.js';
import { observeThrottles, type OnThrottle } from '../aws/throttling.js';
import type { Clock } from './clock.js';
import { type PacingConfig, pacingConfig } from './pacing-settings.js';
import { PacingStore } from './pacing-store.js';
import type { TableDeps } from './rotation-table.js';
import { MetricName, type Telemetry } from './telemetry.js';

/**
 * Pacing in the live workflow (docs/fleet-scale.md): the steps that spend the 10–15 TPS IoT
 * APIs reserve their calls on the shared budget before calling AWS, and every throttle AWS
 * answers anyway is recorded (the AIMD cut) and counted.
 */
export interface Pacing {
  store: PacingStore;
  /** The function's time scale (1 on AWS): waits in the workflow are stretched back by it. */
  timeScale: number;
}

export interface PacedDeps {
  /** Undefined: pacing is off (ROTOR_PACING_ENABLED=false), the step runs at once. */
  pacing?: Pacing;
  clock: Clock;
  telemetry: Telemetry;
}

/** A paced step's answer when its calls are due later: the workflow's Wait takes it from here. */
export interface Deferred {
  waitUntil: string;
}

/** The pacing of a function from its environment (pacing-settings.ts), or undefined when off. */
export function livePacing(deps: TableDeps & { clock: Clock }, config: PacingConfig = pacingConfig()): Pacing | undefined {
  if (!config.enabled) return undefined;
  return { store: new PacingStore(deps, config.settings), timeScale: config.timeScale };
}

/** The reservation a step holds after its Wait: the `pacedUntil` the state machine sends back. */
export function pacedUntilOf(event: unknown): Date | undefined {
  if (typeof event !== 'object' || event === null) return undefined;
  const value = (event as Record<string, unknown>).pacedUntil;
  if (value === undefined || value === null) return undefined;
  const at = typeof value === 'string' ? new Date(value) : undefined;
  if (!at || Number.isNaN(at.getTime())) throw new InvalidInput(`pacedUntil must be an ISO 8601 time or null, got ${JSON.stringify(value)}`);
  return at;
}

/**
 * How many times the state machine's Retry has run this step again (`$$.State.RetryCount`, sent
 * as `retryCount`); 0 when absent. A Retry re-sends the step's input unchanged, `pacedUntil`
 * included, but the reservation it names was spent by the attempt that failed: a retried attempt
 * reserves again.
 */
export function retryCountOf(event: unknown): number {
  if (typeof event !== 'object' || event === null) return 0;
  const value = (event as Record<string, unknown>).retryCount;
  if (value === undefined || value === null) return 0;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw new InvalidInput(`retryCount must be a whole number or null, got ${JSON.stringify(value)}`);
  return value;
}

/** The rate-limited buckets a site spends (the ones worth a PacingRate line). */
function iotBuckets(site: CallSite): Bucket[] {
  return (Object.keys(bucketDemand(CALL_PROFILE[site])) as Bucket[]).filter((bucket) => bucket.startsWith('iot:'));
}

/**
 * Runs a paced step: reserves the site's calls, then
 * - runs it at once when they are due now, or after sleeping in the Lambda when due within
 *   MAX_IN_LAMBDA_WAIT_MS;
 * - otherwise returns `{ waitUntil }` without calling AWS: the state machine waits (no Lambda,
 *   no budget held but the reservation) and runs the step again with `pacedUntil`, which it
 *   then does not reserve again — unless the state machine's Retry runs it (`retryCount` > 0):
 *   the failed attempt spent that reservation, so the retry reserves its own.
 * Only API-bound steps are paced: a device that is slow to answer holds no budget.
 */
export async function pacedStep<T>(deps: PacedDeps, event: unknown, site: CallSite, run: () => Promise<T>): Promise<T | Deferred> {
  // The reservation held after a Wait is this attempt's only when no Retry has run the step since.
  const held = pacedUntilOf(event) !== undefined && retryCountOf(event) === 0;
  if (!deps.pacing || held) return run();
  const { store, timeScale } = deps.pacing;
  let reserved: Awaited<ReturnType<PacingStore['reserve']>>;
  try {
    reserved = await store.reserve(site);
  } catch (error) {
    // Pacing protects the quotas; it must not fail a rotation. Unpaced, a throttle is still
    // retried by the SDK and the state machine, and observed.
    deps.telemetry.log.error('pacing budget unavailable; running the step unpaced', { site, error: error instanceof Error ? error.message : String(error) });
    return run();
  }
  const { atMs, nowMs, controller } = reserved;
  const waitMs = Math.max(0, atMs - nowMs);
  deps.telemetry.milliseconds(MetricName.PacingWaitMs, waitMs);
  for (const bucket of iotBuckets(site)) deps.telemetry.count(MetricName.PacingRate, controller.budget.rate(bucket) * timeScale, { Bucket: bucket });
  if (waitMs > MAX_IN_LAMBDA_WAIT_MS) {
    // The Wait state runs on the workflow's clock: on the local runtime a second lasts timeScale.
    const waitUntil = new Date(nowMs + waitMs / timeScale).toISOString();
    deps.telemetry.log.info('calls reserved for later; waiting in the workflow', { site, waitMs, waitUntil });
    return { waitUntil };
  }
  if (waitMs > 0) await deps.clock.sleep(waitMs);
  return run();
}

/**
 * Observes the throttles of a client: each throttled attempt counts in ThrottledCalls (dimension
 * `Api`), and one per bucket per cooldown is recorded in the shared budget (the AIMD cut; the
 * controller itself treats a burst within its cooldown as one event).
 */
export function throttleObserver(deps: { pacing?: Pacing; clock: Clock; telemetry: Telemetry }): OnThrottle {
  const recorded = new Map<Bucket, number>();
  return async (operation) => {
    const bucket = bucketOf(operation);
    deps.telemetry.count(MetricName.ThrottledCalls, 1, { Api: bucket ?? operation });
    deps.telemetry.log.warn('AWS throttled a call', { operation, bucket });
    if (!bucket || !deps.pacing) return;
    const now = deps.clock.now().getTime();
    const last = recorded.get(bucket);
    if (last !== undefined && now - last < deps.pacing.store.settings.aimd.cooldownMs) return;
    recorded.set(bucket, now);
    try {
      const share = await deps.pacing.store.observeThrottle(bucket);
      deps.telemetry.log.warn('pacing budget cut after a throttle', { bucket, share });
    } catch (error) {
      deps.telemetry.log.error('could not record a throttle in the pacing budget', { bucket, error: error instanceof Error ? error.message : String(error) });
    }
  };
}

export { observeThrottles };

/**
 * What a paced function's handler builds once: its pacing (undefined when off) and a way to
 * observe the throttles of each client it calls the paced APIs with.
 */
export interface PacedRuntime {
  pacing?: Pacing;
  observe<C extends Parameters<typeof observeThrottles>[0]>(client: C, service: string): C;
  /** The same observer, for a client without an SDK middleware stack (the Private CA client's onThrottle). */
  onThrottle: OnThrottle;
}

export function pacedRuntime(deps: TableDeps & { clock: Clock; telemetry: Telemetry }, config: PacingConfig = pacingConfig()): PacedRuntime {
  const pacing = livePacing(deps, config);
  const onThrottle = throttleObserver({ pacing, clock: deps.clock, telemetry: deps.telemetry });
  return { pacing, onThrottle, observe: (client, service) => observeThrottles(client, service, onThrottle) };
}
