import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DescribeCertificateCommand, IoTClient } from '@aws-sdk/client-iot';
import { IoTDataPlaneClient, PublishCommand } from '@aws-sdk/client-iot-data-plane';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { isThrottlingError } from '@smithy/core/retry';
import { loadLocalQuotas } from '../../local/edge/quotas.js';
import { startLocalAws, type LocalAws } from '../../local/runtime.js';
import { REPO_ROOT } from '../../wiring/index.js';
import { describeWithBundles as bundlesDescribe } from '../fixtures/bundles.js';
import { findAwsCli, findBoto3, runWithBoto3, runWithCli, type ApiStep, type Transcript } from '../fixtures/official-clients/clients.js';

/**
 * The local runtime's quota enforcement (`--quotas`) answers in AWS's own throttling shapes, as
 * the official clients read them: the JS SDK v3 classifies every one as throttling and retries
 * it (its `$metadata.attempts` says so), and Debian's AWS CLI v2 and boto3 report
 * ThrottlingException / TooManyRequestsException after their own retries. The quotas are a file
 * with rates so low (one call per 1,000 s) that a bucket, once its one call is spent, stays
 * empty for the whole test. The sessions are written to .rotor/transcripts/quotas.txt.
 */
const describeWithBundles = bundlesDescribe('test/contract/quotas.test.ts');
const TRANSCRIPT = join(REPO_ROOT, '.rotor', 'transcripts', 'quotas.txt');
const CREDENTIALS = { accessKeyId: 'contract', secretAccessKey: 'contract' };
const QUOTAS = {
  quotas: {
    'iot:DescribeCertificate': { rate: 0.001, burst: 1 },
    'iotdata:Publish': { rate: 0.001, burst: 1 },
    'states:StartExecution': { rate: 0.001, burst: 1 },
    'lambda:ConcurrentExecutions': { concurrency: 1 },
  },
};
const CERTIFICATE_ID = 'a'.repeat(64);

const cli = findAwsCli();
const boto3 = findBoto3();
for (const [name, found, install] of [
  ['the AWS CLI v2', cli, 'awscli'],
  ['boto3', boto3, 'python3-boto3'],
] as const) {
  if (found) continue;
  const why = `test/contract/quotas.test.ts: ${name} is not installed (apt-get install ${install}; make test does it as root)`;
  if (process.env.CI) throw new Error(why);
  console.warn(`${why}: its tests are skipped`);
}

/** What a call failed with, as the SDK hands it to the caller. */
interface SdkFailure {
  name: string;
  status?: number;
  attempts?: number;
  throttling: boolean;
  error: Error & Record<string, unknown>;
}

async function failure(call: Promise<unknown>): Promise<SdkFailure> {
  try {
    await call;
  } catch (error) {
    const e = error as Error & { $metadata?: { httpStatusCode?: number; attempts?: number } } & Record<string, unknown>;
    return { name: e.name, status: e.$metadata?.httpStatusCode, attempts: e.$metadata?.attempts, throttling: isThrottlingError(e as never), error: e };
  }
  throw new Error('the call succeeded; a throttle was expected');
}

describeWithBundles('the local runtime throttles in AWS shapes (--quotas)', () => {
  jest.setTimeout(180_000);
  let dir: string;
  let aws: LocalAws;
  let sleeper: Promise<unknown> | undefined;
  const transcripts: Transcript[] = [];
  const config = (): { endpoint: string; region: string; credentials: typeof CREDENTIALS; maxAttempts: number } => ({ endpoint: aws.endpoints.awsEndpoint, region: aws.endpoints.region, credentials: CREDENTIALS, maxAttempts: 3 });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-quotas-contract-'));
    const file = join(dir, 'quotas.json');
    writeFileSync(file, JSON.stringify(QUOTAS));
    aws = await startLocalAws({ port: 0, mqttPort: 0, timeScale: 1, quotas: loadLocalQuotas(file) });
    // Every bucket's one call is spent, so each call below meets an empty bucket.
    expect(aws.quotas?.throttle('iot', 'DescribeCertificate')).toBeUndefined();
    expect(aws.quotas?.throttle('iotdata', 'Publish')).toBeUndefined();
    expect(aws.quotas?.throttle('states', 'StartExecution')).toBeUndefined();
    // A function that stays busy holds the account's one unit of Lambda concurrency.
    const bundle = join(dir, 'sleeper.mjs');
    writeFileSync(bundle, 'export const handler = async () => { await new Promise((resolve) => setTimeout(resolve, 120_000)); return "slept"; };\n');
    aws.lambda.deploy({ name: 'contract-sleeper', bundlePath: bundle, timeoutSeconds: 150 });
    sleeper = aws.lambda.invoke('contract-sleeper', {});
    expect(aws.lambda.runningInvocations()).toBe(1);
  });

  afterAll(async () => {
    if (transcripts.length > 0) {
      mkdirSync(join(REPO_ROOT, '.rotor', 'transcripts'), { recursive: true });
      writeFileSync(TRANSCRIPT, transcripts.map((t) => `# ${t.client}\n\n${t.entries.map((e) => `${e.command}\n${e.output}`).join('\n\n')}\n`).join('\n\n'));
    }
    await aws?.stop();
    await sleeper;
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it('the JS SDK v3 classifies each throttle as throttling and retries it', async () => {
    // Prepare
    const iot = new IoTClient(config());
    const data = new IoTDataPlaneClient(config());
    const sfn = new SFNClient(config());
    const lambda = new LambdaClient(config());
    const callsBefore = aws.edge.calls();
    try {
      // Act
      const describe = await failure(iot.send(new DescribeCertificateCommand({ certificateId: CERTIFICATE_ID })));
      const publish = await failure(data.send(new PublishCommand({ topic: 'rotor/contract', payload: Buffer.from('{}') })));
      const start = await failure(sfn.send(new StartExecutionCommand({ stateMachineArn: aws.endpoints.stateMachineArn, input: '{}' })));
      const invoke = await failure(lambda.send(new InvokeCommand({ FunctionName: 'rotor-release-claim', Payload: Buffer.from('{}') })));
      // Assess: the shapes of the services' API models, each retried to the SDK's max attempts.
      expect(describe).toMatchObject({ name: 'ThrottlingException', status: 400, attempts: 3, throttling: true });
      expect(describe.error.message).toBe('Rate exceeded');
      expect(publish).toMatchObject({ name: 'ThrottlingException', status: 429, attempts: 3, throttling: true });
      expect(start).toMatchObject({ name: 'ThrottlingException', status: 400, attempts: 3, throttling: true });
      expect(invoke).toMatchObject({ name: 'TooManyRequestsException', status: 429, attempts: 3, throttling: true });
      expect(invoke.error.Reason).toBe('ConcurrentInvocationLimitExceeded');
      expect(invoke.error.Type).toBe('User');
      expect(invoke.error.retryAfterSeconds).toBe('1');
      // Throttled calls are counted like any other (what a test of retries reads).
      const calls = aws.edge.calls();
      expect(calls['iot:DescribeCertificate'] - (callsBefore['iot:DescribeCertificate'] ?? 0)).toBe(3);
      expect(calls['states:StartExecution'] - (callsBefore['states:StartExecution'] ?? 0)).toBe(3);
      expect(aws.quotas?.figures().throttledCalls.byApi).toMatchObject({ 'iot:DescribeCertificate': 3, 'iotdata:Publish': 3, 'states:StartExecution': 3, 'lambda:ConcurrentExecutions': 3 });
    } finally {
      for (const client of [iot, data, sfn, lambda]) client.destroy();
    }
  });

  it("tells Rotor's functions the quotas file (ROTOR_PACING_QUOTAS), as a deployment whose api_quotas match its account", () => {
    const told = aws.lambda.functions().filter((f) => f.name.startsWith('rotor-')).map((f) => f.environment.ROTOR_PACING_QUOTAS);
    expect(told.length).toBeGreaterThan(0);
    for (const text of told) {
      expect(JSON.parse(text ?? 'null')).toEqual({
        safetyFraction: 0.9,
        quotas: {
          'iot:DescribeCertificate': { rate: 0.001, burst: 1 },
          'iotdata:Publish': { rate: 0.001, burst: 1 },
          'states:StartExecution': { rate: 0.001, burst: 1 },
          'lambda:ConcurrentExecutions': { concurrency: 1 },
        },
      });
    }
  });

  const steps = (): ApiStep[] => [
    { service: 'iot', operation: 'DescribeCertificate', params: { certificateId: CERTIFICATE_ID } },
    { service: 'iot-data', operation: 'Publish', params: { topic: 'rotor/contract', payload: 'e30=' } },
    { service: 'stepfunctions', operation: 'StartExecution', params: { stateMachineArn: aws.endpoints.stateMachineArn, input: '{}' } },
  ];

  (cli ? it : it.skip)('the AWS CLI v2 reports ThrottlingException after its retries', async () => {
    const transcript: Transcript = { client: cli?.version ?? 'aws', entries: [] };
    transcripts.push(transcript);
    const results = await runWithCli(cli!, aws.endpoints.awsEndpoint, aws.endpoints.region, steps(), transcript);
    expect(results.map((result) => (result.ok ? 'ok' : result.error.Code))).toEqual(['ThrottlingException', 'ThrottlingException', 'ThrottlingException']);
    for (const [index, operation] of ['DescribeCertificate', 'Publish', 'StartExecution'].entries()) {
      expect(transcript.entries[index].output).toMatch(new RegExp(`An error occurred \\(ThrottlingException\\) when calling the ${operation} operation \\(reached max retries: \\d+\\): Rate exceeded`));
    }
    expect(transcript.entries[0].output).toMatch(/An error occurred \(ThrottlingException\) when calling the DescribeCertificate operation \(reached max retries: \d+\): Rate exceeded/);
  });

  (boto3 ? it : it.skip)('boto3 raises ThrottlingException and TooManyRequestsException after its retries', async () => {
    const transcript: Transcript = { client: boto3?.version ?? 'boto3', entries: [] };
    transcripts.push(transcript);
    const all: ApiStep[] = [...steps(), { service: 'lambda', operation: 'Invoke', params: { FunctionName: 'rotor-release-claim', Payload: '{}' } }];
    const results = await runWithBoto3(boto3!, aws.endpoints.awsEndpoint, aws.endpoints.region, all, transcript);
    expect(results.slice(0, 3)).toEqual(steps().map(() => ({ ok: false, error: { Code: 'ThrottlingException', Message: 'Rate exceeded' } })));
    expect(results[3]).toMatchObject({ ok: false, error: { Code: 'TooManyRequestsException', Message: 'Rate Exceeded.' } });
  });
});
