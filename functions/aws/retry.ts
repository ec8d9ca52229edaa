/**
 * Retry settings every Rotor client shares. Adaptive mode adds client-side rate limiting on
 * top of exponential backoff, which is what keeps a burst of tens of thousands of findings
 * from turning IoT's 10–15 TPS certificate limits into failed rotations.
 */
export interface ClientOptions {
  /** Total attempts per call, the first included. */
  maxAttempts?: number;
  region?: string;
}

export const DEFAULT_MAX_ATTEMPTS = 6;

/** AWS_MAX_ATTEMPTS, the SDK's own setting, still wins when a deployment sets it. */
function maxAttemptsFromEnvironment(): number | undefined {
  const value = Number(process.env.AWS_MAX_ATTEMPTS);
  return Number.isInteger(value) && value >= 1 ? value : undefined;
}

export function retrySettings(options: ClientOptions = {}): { maxAttempts: number; retryMode: 'adaptive'; region?: string } {
  return {
    maxAttempts: options.maxAttempts ?? maxAttemptsFromEnvironment() ?? DEFAULT_MAX_ATTEMPTS,
    retryMode: 'adaptive',
    ...(options.region ? { region: options.region } : {}),
  };
}
