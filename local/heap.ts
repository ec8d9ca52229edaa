import { setFlagsFromString } from 'node:v8';

/**
 * How far V8 lets a heap grow past what survived its last full collection before it collects
 * again, in percent. V8's own factor is chosen per isolate between 1.1 and 4: on a busy local
 * runtime it picks the top, so the main thread's heap, whose live objects at the end of a
 * 1,000-device bench are 65-80 MiB (a heap snapshot), peaked at 209-229 MiB. At 50 % it peaked at
 * 131-135 MiB and its collections took no more time (5.2 and 6.5 s of pauses, against 6.9 and
 * 7.0 s); at 30 %, 123-126 MiB, with the main thread's CPU within the run-to-run spread
 * (docs/demo.md, "session 13").
 *
 * The main thread's new space is another part of its peak: left to V8 it grows to 16 MiB per
 * semi-space. That can only be set when Node starts, so `npm run bench` (package.json) starts
 * with NODE_OPTIONS=--max-semi-space-size=2; the Lambda workers get theirs from the function
 * pool (local/lambda/function-pool.ts, YOUNG_GENERATION_MB).
 */
export const HEAP_GROWING_PERCENT = 30;

/**
 * Sets HEAP_GROWING_PERCENT for every heap in this process, the main thread's and each worker's
 * made after it. For the commands that run the local AWS (rotor local up, rotor demo, the bench);
 * setting it again changes nothing.
 */
export function tuneHeapsForLocalRuntime(): void {
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}
