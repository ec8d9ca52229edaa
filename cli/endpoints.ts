import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { LocalEndpoints } from '../local/runtime.js';
import { ENDPOINTS_FILE } from '../local/runtime.js';

/**
 * Finding a running local runtime from another process: `rotor local up` writes
 * DATA_DIR/endpoints.json, and every other command reads it and checks that the edge behind
 * it still answers, so a stale file reads as "not running", not as a hang or a socket error.
 */
export const DEFAULT_DATA_DIR = '.rotor/local';

export class EndpointsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EndpointsError';
  }
}

function isEndpoints(value: unknown): value is LocalEndpoints {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Partial<LocalEndpoints>;
  return typeof v.awsEndpoint === 'string' && typeof v.region === 'string' && typeof v.mqtt?.port === 'number' && typeof v.stateMachineArn === 'string' && typeof v.tableName === 'string';
}

export function readEndpoints(dataDir: string = DEFAULT_DATA_DIR): LocalEndpoints {
  const file = join(resolve(dataDir), ENDPOINTS_FILE);
  if (!existsSync(file)) throw new EndpointsError(`no local runtime found: ${file} is missing (start one with \`rotor local up --data-dir ${dataDir}\`)`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new EndpointsError(`${file} is not valid JSON (${(error as Error).message}): remove it and run \`rotor local up\` again`);
  }
  if (!isEndpoints(parsed)) throw new EndpointsError(`${file} does not describe a local runtime (awsEndpoint, region, mqtt.port, stateMachineArn, tableName expected)`);
  return parsed;
}

/** The endpoints of a runtime that answers, or an error saying it is gone. */
export async function runningEndpoints(dataDir: string = DEFAULT_DATA_DIR, timeoutMs = 2_000): Promise<LocalEndpoints> {
  const endpoints = readEndpoints(dataDir);
  try {
    const answer = await fetch(`${endpoints.awsEndpoint}/_rotor/health`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
  } catch (error) {
    throw new EndpointsError(
      `the local runtime of ${join(resolve(dataDir), ENDPOINTS_FILE)} does not answer at ${endpoints.awsEndpoint} (${(error as Error).message}): the file is stale; start it with \`rotor local up --data-dir ${dataDir}\``,
    );
  }
  return endpoints;
}

/** SDK client settings for a local runtime (any credentials are accepted). */
export function localClientConfig(endpoints: LocalEndpoints): { endpoint: string; region: string; credentials: { accessKeyId: string; secretAccessKey: string } } {
  return { endpoint: endpoints.awsEndpoint, region: endpoints.region, credentials: { accessKeyId: 'local', secretAccessKey: 'local' } };
}
