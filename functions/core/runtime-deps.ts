import type { IoTClient } from '@aws-sdk/client-iot';
import type { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import type { LambdaClient } from '@aws-sdk/client-lambda';
import type { SFNClient } from '@aws-sdk/client-sfn';
import { tableClient } from '../aws/dynamodb.js';
import { iotClient } from '../aws/iot.js';
import { iotDataClient } from '../aws/iot-data.js';
import { lambdaClient } from '../aws/lambda.js';
import { sfnClient } from '../aws/sfn.js';
import { systemClock, type Clock } from './clock.js';
import { optionalEnv, requiredEnv } from './environment.js';
import type { TableDeps } from './rotation-table.js';
import type { Observability, Telemetry } from './telemetry.js';

/**
 * The dependencies a handler file builds once per execution environment (see `once` in
 * handler.ts): every client traced by X-Ray (tracer.ts), the table from TABLE_NAME, the IoT data endpoint
 * from IOT_DATA_ENDPOINT. Core functions never call these; they receive what they need.
 */
export interface BaseDeps extends TableDeps {
  clock: Clock;
  telemetry: Telemetry;
}

export function baseDeps(obs: Observability): BaseDeps {
  return {
    db: obs.tracer.captureClient(tableClient()),
    tableName: requiredEnv('TABLE_NAME'),
    clock: systemClock,
    telemetry: obs.telemetry,
  };
}

export function tracedIot(obs: Observability): IoTClient {
  return obs.tracer.captureClient(iotClient());
}

export function tracedIotData(obs: Observability): IoTDataPlaneClient {
  return obs.tracer.captureClient(iotDataClient({ endpoint: optionalEnv('IOT_DATA_ENDPOINT') }));
}

export function tracedSfn(obs: Observability): SFNClient {
  return obs.tracer.captureClient(sfnClient());
}

export function tracedLambda(obs: Observability): LambdaClient {
  return obs.tracer.captureClient(lambdaClient());
}
