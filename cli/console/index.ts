import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SFNClient } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { CONSOLE_PREFIX, consoleExecutionPath, consoleThingPath } from '../../local/console/api.js';
import { ConsoleServer } from '../../local/console/console-server.js';
import { UNCOUNTED_USER_AGENT } from '../../local/edge/edge-server.js';
import type { LocalAws } from '../../local/runtime.js';
import { localClientConfig } from '../endpoints.js';
import { RuntimeConsoleSource } from './console-source.js';

export { RuntimeConsoleSource } from './console-source.js';

/** The console of a running local runtime: its URL and the clients it reads with. */
export interface LocalConsole {
  url: string;
  stop(): void;
}

/** The console's address on a runtime whose edge is `awsEndpoint`. */
export function consoleUrl(awsEndpoint: string): string {
  return `${awsEndpoint.replace(/\/$/, '')}${CONSOLE_PREFIX}`;
}

export function consoleExecutionUrl(awsEndpoint: string, executionArn: string): string {
  return `${awsEndpoint.replace(/\/$/, '')}${consoleExecutionPath(executionArn)}`;
}

export function consoleThingUrl(awsEndpoint: string, thingName: string): string {
  return `${awsEndpoint.replace(/\/$/, '')}${consoleThingPath(thingName)}`;
}

/**
 * Calls the runtime answered with a throttling error, per `service:Operation`, from its local
 * admin API (GET /_rotor/faults): AWS has no API for it (CloudWatch metrics do it there).
 */
async function throttledCalls(awsEndpoint: string): Promise<{ throttledByOperation?: Record<string, number> }> {
  try {
    const answer = await fetch(`${awsEndpoint.replace(/\/$/, '')}/_rotor/faults`, { signal: AbortSignal.timeout(2_000) });
    const body = (await answer.json()) as { injected?: Record<string, number> };
    return answer.ok && body.injected && Object.keys(body.injected).length > 0 ? { throttledByOperation: body.injected } : {};
  } catch {
    return {};
  }
}

/**
 * The console's base URL when the runtime at `awsEndpoint` serves one (`rotor local up` and
 * `rotor demo` do; a runtime a test starts on its own does not): the links the operator
 * commands print must lead somewhere.
 */
export async function servedConsole(awsEndpoint: string, timeoutMs = 1_000): Promise<string | undefined> {
  try {
    const answer = await fetch(consoleUrl(awsEndpoint), { method: 'HEAD', signal: AbortSignal.timeout(timeoutMs) });
    return answer.ok ? awsEndpoint.replace(/\/$/, '') : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Serves the console at /console/ on the runtime's edge. It reads the runtime as any client
 * does, with SDK clients pointed at that same edge.
 */
export function mountConsole(aws: Pick<LocalAws, 'edge' | 'endpoints'>): LocalConsole {
  const config = { ...localClientConfig(aws.endpoints as Parameters<typeof localClientConfig>[0]), customUserAgent: UNCOUNTED_USER_AGENT };
  const sfn = new SFNClient(config);
  const raw = new DynamoDBClient(config);
  const ddb = DynamoDBDocumentClient.from(raw);
  const source = new RuntimeConsoleSource({
    sfn,
    ddb,
    tableName: aws.endpoints.tableName,
    stateMachineArn: aws.endpoints.stateMachineArn,
    extras: () => throttledCalls(aws.endpoints.awsEndpoint),
  });
  aws.edge.mount(CONSOLE_PREFIX, new ConsoleServer(source).handle);
  return {
    url: consoleUrl(aws.endpoints.awsEndpoint),
    stop: () => {
      sfn.destroy();
      ddb.destroy();
      raw.destroy();
    },
  };
}
