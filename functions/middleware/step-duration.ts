import type { MiddlewareObj, Request } from '@middy/core';
import { MetricName, type Telemetry } from '../core/telemetry.js';

/**
 * Emits how long the function's step took (StepDuration, milliseconds, dimension `step`),
 * whether it succeeded or failed. The start time is kept per request, not per module: the
 * local runtime may run several invocations of one bundle at once.
 */
export function stepDuration<TEvent>(telemetry: Telemetry, step: string, clock: () => number = () => performance.now()): MiddlewareObj<TEvent> {
  const started = new WeakMap<Request<TEvent>, number>();
  const emit = (request: Request<TEvent>): void => {
    const start = started.get(request);
    if (start === undefined) return;
    started.delete(request);
    telemetry.milliseconds(MetricName.StepDuration, Math.max(0, clock() - start), { step });
  };
  return {
    name: 'stepDuration',
    before: (request) => {
      started.set(request, clock());
    },
    after: emit,
    onError: emit,
  };
}
