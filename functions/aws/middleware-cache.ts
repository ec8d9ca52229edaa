/**
 * `cacheMiddleware: true` for the SDK clients that allow it: the client resolves a command
 * class's middleware stack once (copy, sort and link some 30 middlewares) instead of on every
 * call, which was ~6 % of a warm Lambda worker's CPU (scripts/profile-function.ts). The SDK's
 * condition holds here: nothing changes a client's middleware stack after its first call
 * (the X-Ray and throttle observers are added when the client is built, functions/core/runtime-deps.ts
 * and pacing.ts). The document client (dynamodb.ts) refuses the option: its cached handler
 * would send the first command's input forever.
 */
export const CACHE_MIDDLEWARE = { cacheMiddleware: true } as const;
