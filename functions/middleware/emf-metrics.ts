import type { MiddlewareObj } from '@middy/core';
import type { EmfMetrics } from '../core/metrics.js';

/**
 * Emits ColdStart on an execution environment's first invocation and flushes the metrics the
 * invocation added, whether it succeeded or failed.
 */
export function emfMetrics<TEvent>(metrics: EmfMetrics): MiddlewareObj<TEvent> {
  const flush = (): void => metrics.flush();
  return {
    name: 'emfMetrics',
    before: (request) => {
      metrics.coldStart(request.context.functionName);
    },
    after: flush,
    onError: flush,
  };
}
