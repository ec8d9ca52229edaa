import { LambdaClient } from '@aws-sdk/client-lambda';
import { CACHE_MIDDLEWARE } from './middleware-cache.js';
import { retrySettings, type ClientOptions } from './retry.js';

/** Lambda: start-rotations continues a long audit by invoking itself asynchronously. */
export function lambdaClient(options: ClientOptions = {}): LambdaClient {
  return new LambdaClient({ ...retrySettings(options), ...CACHE_MIDDLEWARE });
}
