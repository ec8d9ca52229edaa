/**
 * Local-only fault injection. AWS throttles Rotor's IoT calls in earnest (the certificate APIs
 * allow 10–15 TPS), and the only way to prove that a rotation rides it out — the SDK's retries,
 * then the state machine's Retry — is to make the local AWS throttle on demand. A rule makes the
 * next N calls of one operation answer as AWS does: HTTP 400, error type ThrottlingException,
 * message "Rate exceeded", in the caller's protocol. Nothing else changes, so a test can assert
 * the calls (throttled ones included) in the edge's call counts.
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

  /**
   * @param knownServices the signing names a rule may name; a rule for a service nobody
   *   serves could never fire, so it is refused rather than left pending silently.
   */
  constructor(private readonly knownServices: () => readonly string[] = () => []) {}

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
    return { ...rule };
  }

  /** Consumes one pending fault for this call: the answer to send instead of the service's. */
  take(service: string, operation: string | undefined): FaultAnswer | undefined {
    if (operation === undefined) return undefined;
    const id = key(service, operation);
    const rule = this.rules.get(id);
    if (!rule) return undefined;
    rule.remaining -= 1;
    if (rule.remaining <= 0) this.rules.delete(id);
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
