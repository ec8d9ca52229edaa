import type { Logger } from '@aws-lambda-powertools/logger';
import type { MiddlewareObj } from '@middy/core';

/** Picks the log keys (thingName, rotationId) from an event; undefined values are left out. */
export type LogKeyPicker<TEvent> = (event: TEvent) => Record<string, string | undefined>;

/**
 * Appends the rotation's identity to every log line of the invocation, so one device's
 * rotation can be followed across functions with a single filter. Runs after
 * injectLambdaContext, which resets appended keys at the end of each invocation.
 */
export function rotationLogKeys<TEvent>(logger: Logger, pick: LogKeyPicker<TEvent>): MiddlewareObj<TEvent> {
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
