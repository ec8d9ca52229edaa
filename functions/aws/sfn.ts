import { SFNClient } from '@aws-sdk/client-sfn';
import { CACHE_MIDDLEWARE } from './middleware-cache.js';
import { retrySettings, type ClientOptions } from './retry.js';

/** Step Functions: starting rotations and answering their task tokens. */
export function sfnClient(options: ClientOptions = {}): SFNClient {
  return new SFNClient({ ...retrySettings(options), ...CACHE_MIDDLEWARE });
}
