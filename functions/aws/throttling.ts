import type { MiddlewareStack } from '@smithy/types';
import { errorName } from './errors.js';

/**
 * What AWS answers when a call is over its quota, as the SDK's retry strategy classifies it
 * (service-error-classification's THROTTLING_ERROR_CODES, and HTTP 429).
 */
const THROTTLING_NAMES: readonly string[] = [
  'BandwidthLimitExceeded',
  'EC2ThrottledException',
  'LimitExceededException',
  'PriorRequestNotComplete',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
  'SlowDown',
  'ThrottledException',
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
  'TransactionInProgressException',
];

export function isThrottlingError(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const fields = error as { $metadata?: { httpStatusCode?: number }; $retryable?: { throttling?: boolean } };
  if (fields.$retryable?.throttling === true || fields.$metadata?.httpStatusCode === 429) return true;
  const name = errorName(error);
  return name !== undefined && THROTTLING_NAMES.includes(name);
}

/** `service:Operation`, as apiCallsByOperation and the pacing buckets name calls. */
export type ThrottledOperation = string;

export type OnThrottle = (operation: ThrottledOperation) => void | Promise<void>;

interface ObservableClient {
  middlewareStack: MiddlewareStack<any, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export const THROTTLE_OBSERVER_NAME = 'rotorThrottleObserver';

/**
 * Sees every attempt of every call of this client (it sits inside the SDK's retry middleware,
 * which is `finalizeRequest`/high: `finalizeRequest`/low runs once per attempt and gets the
 * deserialised error), and reports each throttled one. The error still goes to the retry
 * strategy and, when retries run out, to the caller: observing changes nothing else.
 */
export function observeThrottles<C extends ObservableClient>(client: C, service: string, onThrottle: OnThrottle): C {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      try {
        return await next(args);
      } catch (error) {
        if (isThrottlingError(error)) {
          const command = typeof context.commandName === 'string' ? context.commandName.replace(/Command$/, '') : 'unknown';
          try {
            await onThrottle(`${service}:${command}`);
          } catch {
            // Observing must never replace the error the caller is owed.
          }
        }
        throw error;
      }
    },
    { step: 'finalizeRequest', priority: 'low', name: THROTTLE_OBSERVER_NAME, override: true },
  );
  return client;
}
