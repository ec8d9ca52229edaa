import type { MiddlewareObj } from '@middy/core';
import type { StructuredLogger } from '../core/logger.js';

/**
 * Puts the Lambda context (function, request id, cold start) on every log line of the
 * invocation, and clears it and every appended key when the invocation ends, so nothing of one
 * rotation leaks into the next invocation's lines.
 */
export function lambdaContext<TEvent>(logger: StructuredLogger): MiddlewareObj<TEvent> {
  const reset = (): void => logger.resetKeys();
  return {
    name: 'lambdaContext',
    before: (request) => {
      logger.addContext(request.context);
    },
    after: reset,
    onError: reset,
  };
}
