import { IoTClient } from '@aws-sdk/client-iot';
import { CACHE_MIDDLEWARE } from './middleware-cache.js';
import { retrySettings, type ClientOptions } from './retry.js';

/** The IoT control plane: certificates, policies, things, audit findings. */
export function iotClient(options: ClientOptions = {}): IoTClient {
  return new IoTClient({ ...retrySettings(options), ...CACHE_MIDDLEWARE });
}
