import type { MiddlewareObj, Request } from '@middy/core';
import type { OpenSubsegment, XRayTracer } from '../core/tracer.js';
import type { LogKeyPicker } from './rotation-log-keys.js';

/**
 * The `## handler` subsegment of a sampled invocation, annotated with ColdStart, Service and
 * the rotation's identity (thingName, rotationId: X-Ray annotations are searchable), ended with
 * the error if the function failed; the invocation returns only once its documents are sent.
 * Kept per request, like stepDuration.
 */
export function traceHandler<TEvent>(tracer: XRayTracer, pick: LogKeyPicker<TEvent>): MiddlewareObj<TEvent> {
  const open = new WeakMap<Request<TEvent>, OpenSubsegment>();
  let invocations = 0;
  const end = async (request: Request<TEvent>): Promise<void> => {
    const subsegment = open.get(request);
    open.delete(request);
    subsegment?.end(request.error ? { exception: request.error, fault: true } : {});
    await tracer.flush();
  };
  return {
    name: 'traceHandler',
    before: (request) => {
      invocations += 1;
      let keys: Record<string, string | undefined> = {};
      try {
        keys = pick(request.event);
      } catch {
        // A malformed event is reported by the function itself; tracing must not fail first.
      }
      const present = Object.fromEntries(Object.entries(keys).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
      const subsegment = tracer.beginHandler({ ColdStart: invocations === 1, ...present });
      if (subsegment) open.set(request, subsegment);
    },
    after: end,
    onError: end,
  };
}
