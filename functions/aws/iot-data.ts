import { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { CACHE_MIDDLEWARE } from './middleware-cache.js';
import { retrySettings, type ClientOptions } from './retry.js';

export interface IotDataOptions extends ClientOptions {
  /** The account's data endpoint (IOT_DATA_ENDPOINT), with or without a scheme. */
  endpoint?: string;
}

/**
 * The IoT data plane (Publish). Its endpoint is per account, so it comes from the
 * IOT_DATA_ENDPOINT variable; without it the SDK's default (or AWS_ENDPOINT_URL, the local
 * runtime) applies.
 */
export function iotDataClient(options: IotDataOptions = {}): IoTDataPlaneClient {
  const endpoint = options.endpoint?.trim();
  return new IoTDataPlaneClient({
    ...retrySettings(options),
    ...CACHE_MIDDLEWARE,
    ...(endpoint ? { endpoint: /^[a-z]+:\/\//i.test(endpoint) ? endpoint : `https://${endpoint}` } : {}),
  });
}
