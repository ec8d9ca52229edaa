/**
 * Local-only fault injection, of two kinds.
 *
 * throttle: AWS throttles Rotor's IoT calls in earnest (the certificate APIs
 * allow 10–15 TPS), and the only way to prove that a rotation rides it out — the SDK's retries,
 * then the state machine's Retry — is to make the local AWS throttle on demand. A rule makes the
 * next N calls of one operation answer as AWS does: HTTP 400, error type ThrottlingException,
 * message "Rate exceeded", in the caller's protocol. Nothing else changes, so a test can assert
 * the calls (throttled ones included) in the edge's call counts.
 *
 * crash: a Lambda dies mid-invocation (a timeout, an out-of-memory, a runtime exit) after some
 * of its AWS calls have taken effect. A rule makes the next `times` invocations of one function
 * die right after their Nth AWS call returns (the worker thread exits before the function sees
 * the answer), and the invocation fails as it does on AWS: Sandbox.Timedout by default, or
 * Runtime.ExitError / Lambda.Unknown. It is how a test proves there is no crash window.
 */

export const THROTTLING_ERROR = 'ThrottlingException';
export const THROTTLING_MESSAGE = 'Rate exceeded';
export const THROTTLING_STATUS = 400;
/** A guard against a typo like 1e9 keeping a runtime throttled for good. */
export const MAX_THROTTLE_COUNT = 1_000;

export interface ThrottleRule {
  /** SigV4 signing name, e.g. 'iot'. */
  service: string;
  /** The operation as the edge counts it, e.g. 'CreateCertificateFromCsr'. */
  operation: string;
  /** Calls still to be throttled. */
  remaining: number;
}

/** How a crashed invocation surfaces to its caller (Step Functions matches these names). */
export const CRASH_SURFACES = ['Sandbox.Timedout', 'Runtime.ExitError', 'Lambda.Unknown'] as const;
export type CrashSurface = (typeof CRASH_SURFACES)[number];
export const MAX_CRASH_AFTER_CALLS = 1_000;

export interface CrashRule {
  /** The deployed function name, e.g. 'rotor-issue-certificate'. */
  function: string;
  /** The invocation dies right after this many of its AWS calls returned (0: before the first). */
  afterAwsCalls: number;
  /** Invocations still to crash. */
  remaining: number;
  surface: CrashSurface;
}

/** What one invocation is told: die after this many AWS calls, surfacing as `surface`. */
export interface CrashPlan {
  afterAwsCalls: number;
  surface: CrashSurface;
}

export interface FaultAnswer {
  code: string;
  message: string;
  status: number;
}

export class FaultError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FaultError';
  }
}

const OPERATION = /^[A-Za-z][A-Za-z0-9]{0,127}$/;

function key(service: string, operation: string): string {
  return `${service}:${operation}`;
}

export class FaultInjector {
  private readonly rules = new Map<string, ThrottleRule>();
  private readonly answered = new Map<string, number>();
  private readonly crashRules = new Map<string, CrashRule>();
  private readonly crashedCount = new Map<string, number>();
  /** The deployed function names a crash rule may name; set by the runtime once Lambda is up. */
  knownFunctions: () => readonly string[] = () => [];
  /**
   * Told the services with throttle rules pending whenever that may have changed: calls that
   * usually skip the edge (local/dynamodb/direct-path.ts) must cross it while their service has one.
   */
  onThrottleRulesChanged: (services: ReadonlySet<string>) => void = () => undefined;

  /**
   * @param knownServices the signing names a rule may name; a rule for a service nobody
   *   serves could never fire, so it is refused rather than left pending silently.
   */
  constructor(private readonly knownServices: () => readonly string[] = () => []) {}

  /**
   * The next `times` invocations of `functionName` die after `afterAwsCalls` AWS calls; times 0
   * removes the rule. The name is the deployed one or the wiring's ('issue-certificate').
   */
  crash(functionName: string, afterAwsCalls: number, times = 1, surface: CrashSurface = 'Sandbox.Timedout'): CrashRule {
    const known = this.knownFunctions();
    const deployed = typeof functionName === 'string' ? known.find((name) => name === functionName || name.endsWith(`-${functionName}`)) : undefined;
    if (!deployed) throw new FaultError(`function must be one of the deployed functions (${known.join(', ') || 'none yet'}), got ${JSON.stringify(functionName)}`);
    if (typeof afterAwsCalls !== 'number' || !Number.isInteger(afterAwsCalls) || afterAwsCalls < 0 || afterAwsCalls > MAX_CRASH_AFTER_CALLS) {
      throw new FaultError(`afterAwsCalls must be an integer from 0 to ${MAX_CRASH_AFTER_CALLS}, got ${JSON.stringify(afterAwsCalls)}`);
    }
    if (typeof times !== 'number' || !Number.isInteger(times) || times < 0 || times > MAX_THROTTLE_COUNT) {
      throw new FaultError(`times must be an integer from 0 to ${MAX_THROTTLE_COUNT}, got ${JSON.stringify(times)}`);
    }
    if (!(CRASH_SURFACES as readonly string[]).includes(surface)) throw new FaultError(`surface must be one of ${CRASH_SURFACES.join(', ')}, got ${JSON.stringify(surface)}`);
    const rule: CrashRule = { function: deployed, afterAwsCalls, remaining: times, surface };
    if (times === 0) this.crashRules.delete(deployed);
    else this.crashRules.set(deployed, rule);
    return { ...rule };
  }

  /** Consumes one pending crash for an invocation of `functionName` that is about to start. */
  takeCrash(functionName: string): CrashPlan | undefined {
    const rule = this.crashRules.get(functionName);
    if (!rule) return undefined;
    rule.remaining -= 1;
    if (rule.remaining <= 0) this.crashRules.delete(functionName);
    this.crashedCount.set(functionName, (this.crashedCount.get(functionName) ?? 0) + 1);
    return { afterAwsCalls: rule.afterAwsCalls, surface: rule.surface };
  }

  /** Crash rules with invocations still to kill. */
  pendingCrashes(): CrashRule[] {
    return [...this.crashRules.values()].map((rule) => ({ ...rule }));
  }

  /** Invocations told to crash so far, by function. */
  crashed(): Record<string, number> {
    return Object.fromEntries(this.crashedCount);
  }

  /** The next `count` calls of service:operation answer ThrottlingException; 0 removes the rule. */
  throttle(service: string, operation: string, count: number): ThrottleRule {
    const known = this.knownServices();
    if (typeof service !== 'string' || !known.includes(service)) {
      throw new FaultError(`service must be one of the signing names the edge serves (${known.join(', ') || 'none yet'}), got ${JSON.stringify(service)}`);
    }
    if (typeof operation !== 'string' || !OPERATION.test(operation)) {
      throw new FaultError(`operation must be an API operation name such as CreateCertificateFromCsr, got ${JSON.stringify(operation)}`);
    }
    if (typeof count !== 'number' || !Number.isInteger(count) || count < 0 || count > MAX_THROTTLE_COUNT) {
      throw new FaultError(`count must be an integer from 0 to ${MAX_THROTTLE_COUNT}, got ${JSON.stringify(count)}`);
    }
    const rule = { service, operation, remaining: count };
    if (count === 0) this.rules.delete(key(service, operation));
    else this.rules.set(key(service, operation), rule);
    this.throttleRulesChanged();
    return { ...rule };
  }

  /** Consumes one pending fault for this call: the answer to send instead of the service's. */
  take(service: string, operation: string | undefined): FaultAnswer | undefined {
    if (operation === undefined) return undefined;
    const id = key(service, operation);
    const rule = this.rules.get(id);
    if (!rule) return undefined;
    rule.remaining -= 1;
    if (rule.remaining <= 0) {
      this.rules.delete(id);
      this.throttleRulesChanged();
    }
    this.answered.set(id, (this.answered.get(id) ?? 0) + 1);
    return { code: THROTTLING_ERROR, message: THROTTLING_MESSAGE, status: THROTTLING_STATUS };
  }

  /** Rules with calls still to throttle. */
  pending(): ThrottleRule[] {
    return [...this.rules.values()].map((rule) => ({ ...rule }));
  }

  /** Calls answered with a fault so far, keyed `service:Operation`. */
  injected(): Record<string, number> {
    return Object.fromEntries(this.answered);
  }

  clear(): void {
    this.rules.clear();
    this.answered.clear();
    this.crashRules.clear();
    this.crashedCount.clear();
    this.throttleRulesChanged();
  }

  private throttleRulesChanged(): void {
    this.onThrottleRulesChanged(new Set([...this.rules.values()].map((rule) => rule.service)));
  }
}

/** Reads the JSON body of POST /_rotor/faults: `{ service, operation, count }`. */
export function parseThrottleRequest(body: unknown): { service: string; operation: string; count: number } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new FaultError('the body must be a JSON object: {"service": "iot", "operation": "CreateCertificateFromCsr", "count": 2}');
  }
  const { service, operation, count } = body as Record<string, unknown>;
  return { service: service as string, operation: operation as string, count: count as number };
}

export type FaultRequest =
  | { kind: 'throttle'; service: string; operation: string; count: number }
  | { kind: 'crash'; function: string; afterAwsCalls: number; times: number; surface: CrashSurface };

/**
 * Reads the JSON body of POST /_rotor/faults: a throttle `{ service, operation, count }` (kind
 * 'throttle' may be said or left out) or a crash `{ kind: 'crash', function, afterAwsCalls,
 * times?, surface? }`. Values are checked by FaultInjector.
 */
export function parseFaultRequest(body: unknown): FaultRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new FaultError(
      'the body must be a JSON object: {"service": "iot", "operation": "CreateCertificateFromCsr", "count": 2} or {"kind": "crash", "function": "issue-certificate", "afterAwsCalls": 4, "times": 1}',
    );
  }
  const fields = body as Record<string, unknown>;
  const kind = fields.kind ?? 'throttle';
  if (kind === 'throttle') return { kind, ...parseThrottleRequest(body) };
  if (kind !== 'crash') throw new FaultError(`kind must be "throttle" or "crash", got ${JSON.stringify(kind)}`);
  return {
    kind,
    function: fields.function as string,
    afterAwsCalls: fields.afterAwsCalls as number,
    times: (fields.times ?? 1) as number,
    surface: (fields.surface ?? 'Sandbox.Timedout') as CrashSurface,
  };
}
