import { readdirSync, readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import { CURRENT_SK, MessageType, RotationStatus, Step, thingPk, topicFor, WaitFor } from '../domain/index.js';
import { askThreadMemory } from '../device-sim/memory-probe.js';
import { functionName, startLocalAws, type LocalAws } from '../local/runtime.js';
import { REPO_ROOT } from '../wiring/index.js';

/**
 * `npx tsx scripts/profile-function.ts [--function request-csr] [--invocations 500]`: what one
 * warm invocation of a function costs in its Lambda worker, outside the AWS calls it makes.
 * It starts the local runtime (local/runtime.ts) with one worker per function, so the bundle
 * (dist/functions, `make build`) runs in a worker exactly as local/lambda/worker-source.ts runs
 * it, seeds what the scenario needs, warms the worker, and invokes it N times one after the
 * other. It prints the worker thread's CPU per invocation (from /proc/thread-self/stat, through
 * the memory probe) and per AWS call the invocation made.
 *
 * Profiling: `node --cpu-prof --cpu-prof-dir DIR --import tsx scripts/profile-function.ts …`
 * writes one profile per thread when the runtime stops; `--profile-dir DIR` then sums the
 * worker's self time by source file, mapped back through the bundle's source map.
 * Not a test: nothing here asserts a time.
 */

interface Scenario {
  /** The function whose worker is measured. */
  function: string;
  /** What the function's invocations need to exist; returns the event of invocation i. */
  prepare(aws: LocalAws): Promise<(i: number) => unknown>;
}

const THING = 'profile-thing-1';
const ROTATION = 'profile-rotation-1';

async function seedRotation(aws: LocalAws): Promise<void> {
  const db = DynamoDBDocumentClient.from(
    new DynamoDBClient({ endpoint: aws.endpoints.awsEndpoint, region: aws.endpoints.region, credentials: { accessKeyId: 'local', secretAccessKey: 'local' } }),
  );
  const now = new Date().toISOString();
  await db.send(
    new PutCommand({
      TableName: aws.endpoints.tableName,
      Item: {
        pk: thingPk(THING),
        sk: CURRENT_SK,
        thingName: THING,
        rotationId: ROTATION,
        status: RotationStatus.InProgress,
        step: Step.RequestCsr,
        oldCertificateId: 'a'.repeat(64),
        // One csr_req already sent: request-csr skips the shared-certificate check, as on a re-send.
        csrRequests: 1,
        waitFor: WaitFor.CsrResponse,
        startedAt: now,
        updatedAt: now,
      },
    }),
  );
  db.destroy();
}

const SCENARIOS: Record<string, Scenario> = {
  /** The success path: GetItem, UpdateItem (park the token), iot-data Publish, one log line, StepDuration. */
  'request-csr': {
    function: 'request-csr',
    prepare: async (aws) => {
      await seedRotation(aws);
      return (i) => ({ thingName: THING, rotationId: ROTATION, taskToken: `token-${i}`, attempt: 1 });
    },
  },
  /** A csr_res for another rotation (stale): GetItem, IgnoredMessages, one log line. */
  'device-message': {
    function: 'device-message',
    prepare: async (aws) => {
      await seedRotation(aws);
      const payload = Buffer.from(JSON.stringify({ rotationId: 'not-this-rotation', csr: '-----BEGIN CERTIFICATE REQUEST-----' })).toString('base64');
      return () => ({ payload, clientId: THING, principal: 'a'.repeat(64), topic: topicFor(THING, MessageType.CsrResponse), receivedAt: Date.now() });
    },
  },
};

async function workerCpuMs(name: string): Promise<number> {
  const threads = (await askThreadMemory(300)).filter((t) => t.kind === `lambda:${functionName(name)}`);
  if (threads.length !== 1 || threads[0].cpuMs === undefined) throw new Error(`expected one worker of ${name} answering with its CPU time, got ${threads.length}`);
  return threads[0].cpuMs;
}


/** Self time of one profile by source file (bundle frames mapped through their .map). */
function selfTimeBySource(profilePath: string, byFunction = false): { totalMs: number; bySource: Map<string, number> } {
  const profile = JSON.parse(readFileSync(profilePath, 'utf8')) as {
    nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number } }[];
    samples: number[];
    startTime: number;
    endTime: number;
  };
  const maps = new Map<string, SourceMap | null>();
  const mapOf = (url: string): SourceMap | null => {
    if (!maps.has(url)) {
      let map: SourceMap | null = null;
      try {
        const file = new URL(url).pathname;
        map = new SourceMap(JSON.parse(readFileSync(`${file}.map`, 'utf8')));
      } catch {
        map = null;
      }
      maps.set(url, map);
    }
    return maps.get(url) as SourceMap | null;
  };
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const perSample = (profile.endTime - profile.startTime) / 1000 / Math.max(1, profile.samples.length);
  const bySource = new Map<string, number>();
  for (const id of profile.samples) {
    const frame = (nodes.get(id) as (typeof profile.nodes)[number]).callFrame;
    let source = frame.url ? frame.url.replace(/^file:\/\//, '') : `(${frame.functionName || 'native'})`;
    if (frame.url.endsWith('.mjs')) {
      const entry = mapOf(frame.url)?.findEntry(frame.lineNumber, frame.columnNumber) as { originalSource?: string } | undefined;
      // The map's sources are relative to the bundle (esbuild: ../../../functions/x.ts).
      if (entry?.originalSource) source = resolve(dirname(source), entry.originalSource.replace(/^file:\/\//, ''));
    }
    source = source.replace(/^.*node_modules\//, '');
    source = source.startsWith('/') ? relative(REPO_ROOT, source) : source;
    if (byFunction) source = `${source} ${frame.functionName || '(anonymous)'}`;
    bySource.set(source, (bySource.get(source) ?? 0) + perSample);
  }
  return { totalMs: perSample * profile.samples.length, bySource };
}

function packageOf(source: string): string {
  if (source.startsWith('@')) return source.split('/').slice(0, 2).join('/');
  if (/^(functions|domain|wiring)\//.test(source)) return source;
  return source.split('/')[0];
}

function report(profileDir: string, byFunction: boolean): void {
  for (const file of readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile'))) {
    const { totalMs, bySource } = selfTimeBySource(join(profileDir, file), byFunction);
    if (![...bySource.keys()].some((s) => s.startsWith('functions/'))) continue;
    const grouped = new Map<string, number>();
    for (const [source, ms] of bySource) {
      const key = byFunction ? source : packageOf(source);
      grouped.set(key, (grouped.get(key) ?? 0) + ms);
    }
    console.log(`\n${file}: ${totalMs.toFixed(0)} ms sampled (idle included)`);
    for (const [source, ms] of [...grouped].sort((a, b) => b[1] - a[1]).slice(0, byFunction ? 60 : 40)) console.log(`${ms.toFixed(0).padStart(8)} ms  ${source}`);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      function: { type: 'string', default: 'request-csr' },
      invocations: { type: 'string', default: '500' },
      warm: { type: 'string', default: '50' },
      'profile-dir': { type: 'string' },
      /** Bundles to load instead of dist/functions (a before/after pair, built apart). */
      'functions-dir': { type: 'string' },
      'report-only': { type: 'boolean', default: false },
      /** Group the profile's self time by source file and function instead of by package. */
      'by-function': { type: 'boolean', default: false },
    },
  });
  if (values['profile-dir'] && values['report-only']) return report(resolve(values['profile-dir']), values['by-function'] as boolean);
  const scenario = SCENARIOS[values.function as string];
  if (!scenario) throw new Error(`no scenario for ${values.function}: one of ${Object.keys(SCENARIOS).join(', ')}`);
  const invocations = Number(values.invocations);
  const warm = Number(values.warm);
  const aws = await startLocalAws({ port: 0, mqttPort: 0, functionConcurrency: 1, ...(values['functions-dir'] ? { functionsDir: resolve(values['functions-dir']) } : {}) });
  try {
    const eventOf = await scenario.prepare(aws);
    const name = functionName(scenario.function);
    const invoke = async (i: number): Promise<void> => {
      const result = await aws.lambda.invoke(name, eventOf(i));
      if (!result.ok) throw new Error(`${scenario.function} failed: ${JSON.stringify(result.error)}`);
    };
    for (let i = 0; i < warm; i++) await invoke(i);
    const cpu0 = await workerCpuMs(scenario.function);
    const calls0 = aws.edge.totalCalls();
    const main0 = process.cpuUsage();
    const started = performance.now();
    for (let i = 0; i < invocations; i++) await invoke(warm + i);
    const wallMs = performance.now() - started;
    const mainCpu = process.cpuUsage(main0);
    const cpuMs = (await workerCpuMs(scenario.function)) - cpu0;
    const calls = (aws.edge.totalCalls()) - calls0;
    console.log(`${scenario.function}: ${invocations} warm invocations in ${(wallMs / 1000).toFixed(1)} s, ${(calls / invocations).toFixed(1)} AWS calls each`);
    console.log(`  worker CPU   ${(cpuMs / invocations).toFixed(2)} ms per invocation, ${(cpuMs / calls).toFixed(2)} ms per AWS call`);
    console.log(`  process CPU  ${((mainCpu.user + mainCpu.system) / 1000 / invocations).toFixed(2)} ms per invocation (all threads: main, worker, DynamoDB Local's JVM excluded)`);
  } finally {
    await aws.stop();
  }
  if (values['profile-dir']) report(resolve(values['profile-dir']), values['by-function'] as boolean);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
