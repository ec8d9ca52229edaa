import type { MiddlewareObj } from '@middy/core';
import type { StructuredLogger } from '../core/logger.js';

/** Picks the log keys (thingName, rotationId) from an event; undefined values are left out. */
export type LogKeyPicker<TEvent> = (event: TEvent) => Record<string, string | undefined>;

/**
 * Appends the rotation's identity to every log line of the invocation, so one device's
 * rotation can be followed across functions with a single filter. Runs after lambdaContext,
 * which resets appended keys at the end of each invocation.
 */
export function rotationLogKeys<TEvent>(logger: Pick<StructuredLogger, 'appendKeys'>, pick: LogKeyPicker<TEvent>): MiddlewareObj<TEvent> {
  return {
    name: 'rotationLogKeys',
    before: (request) => {
      let keys: Record<string, string | undefined>;
      try {
        keys = pick(request.event);
      } catch {
        // A malformed event is reported by the function itself; logging must not fail first.
        return;
      }
      const present = Object.fromEntries(Object.entries(keys).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
      if (Object.keys(present).length) logger.appendKeys(present);
    },
  };
}
