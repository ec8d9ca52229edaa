import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IoTClient, StartOnDemandAuditTaskCommand } from '@aws-sdk/client-iot';
import { ListExecutionsCommand, SFNClient } from '@aws-sdk/client-sfn';
import { auditExecutionName, retryExecutionName } from '../../domain/naming.js';
import { FailureReason, RotationStatus, Step } from '../../domain/rotation.js';
import { CsrRejection } from '../../domain/csr-rules.js';
import { ErrorName } from '../../domain/errors.js';
import { FaultKind } from '../../device-sim/faults.js';
import { Fleet } from '../../device-sim/fleet.js';
import { FileKeyStore } from '../../device-sim/key-store.js';
import { createCsrPem, DEFAULT_KEY_ALGORITHM, generatePrivateKeyPem } from '../../device-sim/keys.js';
import { DEVICE_POLICY_NAME, startLocalAws, type LocalAws } from '../../local/runtime.js';
import type { ExecutionDescription } from '../../local/stepfunctions/service.js';
import { runOperatorCli } from '../../cli/operator/index.js';
import { DESCRIBE_WARNING, type ExpiringReport } from '../../cli/operator/expiring.js';
import type { RetrySummary } from '../../cli/operator/retry.js';
import type { StatusReport } from '../../cli/operator/status.js';
import type { Trace } from '../../cli/operator/trace.js';
import { capturedIo, type CapturedIo } from '../unit/cli/fake-target.js';
import { describeWithBundles as bundlesDescribe } from '../fixtures/bundles.js';

/**
 * The operator commands, run the way an operator runs them (`rotor … --local --data-dir DIR`,
 * through the runtime's endpoints file), after REAL rotations: four simulated devices on the
 * local runtime, two that behave, one whose CSR names the wrong thing (rejected in Issue
 * certificate) and one that refuses its new certificate (crt_err in Deliver certificate).
 * Every fact the commands print comes from what the state machine, the functions and the
 * devices actually did. Needs the function bundles (`make build`).
 */
const describeWithBundles = bundlesDescribe('test/e2e/cli.test.ts');

const HEALTHY = ['cli-ok-1', 'cli-ok-2'] as const;
const WRONG_CN = 'cli-wrong-cn';
const REFUSES = 'cli-refuses';
const THINGS = [...HEALTHY, WRONG_CN, REFUSES] as const;
const FAULTS: Record<string, FaultKind> = { [WRONG_CN]: FaultKind.WrongCn, [REFUSES]: FaultKind.RefuseCert };

/**
 * At scale 0.01 the CSR and ack timeouts (600 s) last 6 s. The two faults fail on the device's
 * own answer (a CSR with the wrong CN, a crt_err), never on a timeout, so generous timeouts cost
 * nothing when all is well; they are what keeps a healthy device (or the refusing one, whose
 * crt_err must arrive before the ack timeout) from being failed as NO_ACK on a loaded machine
 * (a 1.2 s ack timeout did exactly that with three suites running on two cores).
 */
const TIME_SCALE = 0.01;
const SETTINGS = { csrTimeoutSeconds: 600, csrRetryIntervalSeconds: 100, csrRequestRetries: 1, ackTimeoutSeconds: 600 };
/** Past the slowest legal rotation at this scale (6 + 1 + 6 + 6 s), with room for a loaded machine. */
const ROTATION_DEADLINE_MS = 45_000;
const CREDENTIALS = { accessKeyId: 'cli-e2e', secretAccessKey: 'cli-e2e' };

interface Device {
  thingName: string;
  stateDir: string;
  keyPem: string;
  certPem: string;
  certificateId: string;
}

/** Polls a condition until it holds or the deadline passes; the error says what never happened. */
async function until(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function lineWith(lines: readonly string[], ...parts: string[]): string | undefined {
  return lines.find((line) => parts.every((part) => line.includes(part)));
}

describeWithBundles('rotor operator commands after real rotations on the local runtime', () => {
  jest.setTimeout(60_000);
  let workDir = '';
  let aws: LocalAws;
  let fleet: Fleet | undefined;
  let fixedFleet: Fleet | undefined;
  let sfn: SFNClient;
  const devices = new Map<string, Device>();
  const auditExecutions = new Map<string, ExecutionDescription>();

  const local = (...args: string[]): string[] => [...args, '--local', '--data-dir', join(workDir, 'aws')];

  async function cli(...args: string[]): Promise<{ code: number; io: CapturedIo }> {
    const io = capturedIo();
    const code = await runOperatorCli(local(...args), { io });
    return { code, io };
  }

  async function cliJson<T>(...args: string[]): Promise<T> {
    const { code, io } = await cli(...args, '--json');
    expect({ code, stderr: io.stderr }).toEqual({ code: 0, stderr: [] });
    return JSON.parse(io.stdout.join('\n')) as T;
  }

  /** Waits for a real execution to end and returns how it ended, read in-process from the runtime. */
  async function ended(executionArn: string): Promise<ExecutionDescription> {
    let found: ExecutionDescription | undefined;
    await until(
      () => {
        try {
          found = aws.stepFunctions.describeExecution(executionArn);
        } catch {
          // Not started yet: the audit notification is still on its way through SNS and Lambda.
          return false;
        }
        return found.status !== 'RUNNING';
      },
      ROTATION_DEADLINE_MS,
      `${executionArn} to end`,
    );
    return found as ExecutionDescription;
  }

  async function executionCount(): Promise<number> {
    const listed = await sfn.send(new ListExecutionsCommand({ stateMachineArn: aws.endpoints.stateMachineArn, maxResults: 1000 }));
    return listed.executions?.length ?? 0;
  }

  beforeAll(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'rotor-cli-e2e-'));
    aws = await startLocalAws({ dataDir: join(workDir, 'aws'), port: 0, mqttPort: 0, timeScale: TIME_SCALE, settings: SETTINGS });
    sfn = new SFNClient({ endpoint: aws.endpoints.awsEndpoint, region: aws.endpoints.region, credentials: CREDENTIALS });

    // Provisioning as on a factory line: the device's key is made here, the local CA signs its
    // CSR, and the certificate expires in 10 days so the audit's expiring check flags it.
    for (const thingName of THINGS) {
      const keyPem = await generatePrivateKeyPem(DEFAULT_KEY_ALGORITHM);
      const provisioned = await aws.iot.registry.provisionDevice({
        thingName,
        policyName: DEVICE_POLICY_NAME,
        csrPem: await createCsrPem(keyPem, thingName),
        expiresInDays: 10,
      });
      devices.set(thingName, { thingName, stateDir: join(workDir, 'devices', thingName), keyPem, certPem: provisioned.certificatePem, certificateId: provisioned.certificateId });
    }
    const endpoint = { host: aws.endpoints.mqtt.host, port: aws.endpoints.mqtt.port, caPem: aws.caPem };
    fleet = new Fleet({
      endpoint,
      devices: [...devices.values()].map((d) => ({
        thingName: d.thingName,
        stateDir: d.stateDir,
        provisioned: { keyPem: d.keyPem, certPem: d.certPem },
        ...(FAULTS[d.thingName] ? { fault: { kind: FAULTS[d.thingName], durationMs: 0 } } : {}),
      })),
    });
    await fleet.start();
    const agents = fleet.agents;
    // A csr_req published before a device's first subscription has no session to wait in.
    await until(() => agents.every((a) => a.snapshot.connection.status === 'connected'), 10_000, 'the four devices to connect');

    // The Device Defender audit, through the SDK against the edge, as AWS would run it.
    const iot = new IoTClient({ endpoint: aws.endpoints.awsEndpoint, region: aws.endpoints.region, credentials: CREDENTIALS });
    let taskId: string;
    try {
      const checks = String(aws.deployment.settings.auditChecks).split(',').map((c) => c.trim());
      taskId = (await iot.send(new StartOnDemandAuditTaskCommand({ targetCheckNames: checks }))).taskId ?? '';
    } finally {
      iot.destroy();
    }
    expect(taskId).not.toBe('');
    const prefix = `${aws.endpoints.stateMachineArn.replace(':stateMachine:', ':execution:')}:`;
    // Waited for together: one deadline for the whole audit, not one per device in turn.
    const outcomes = await Promise.all([...devices.values()].map((d) => ended(prefix + auditExecutionName(d.thingName, d.certificateId, taskId))));
    for (const outcome of outcomes) auditExecutions.set((JSON.parse(outcome.input) as { thingName: string }).thingName, outcome);
  }, 120_000);

  afterAll(async () => {
    await fixedFleet?.stop();
    await fleet?.stop();
    sfn?.destroy();
    await aws?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it('the rotations really ran: two rotated, the wrong CN and the refused certificate failed and escalated', () => {
    expect(Object.fromEntries([...auditExecutions].map(([thing, e]) => [thing, e.status === 'SUCCEEDED' ? 'SUCCEEDED' : `${e.status} ${e.error}`]))).toEqual({
      [HEALTHY[0]]: 'SUCCEEDED',
      [HEALTHY[1]]: 'SUCCEEDED',
      [WRONG_CN]: `FAILED ${FailureReason.CsrRejected}`,
      [REFUSES]: `FAILED ${FailureReason.DeviceError}`,
    });
    const escalated = aws.sns.messages(aws.endpoints.topics.escalation).map((m) => (JSON.parse(m.message) as { thingName: string }).thingName);
    expect(escalated.sort()).toEqual([REFUSES, WRONG_CN]);
  });

  describe('status', () => {
    it('counts each status and names the failing step and reason of each device', async () => {
      const { code, io } = await cli('status');
      expect(code).toBe(0);
      expect(io.stderr).toEqual([]);
      expect(io.stdout[0]).toBe('IN_PROGRESS 0   SUCCEEDED 2   FAILED 2   (total 4)');
      expect(lineWith(io.stdout, WRONG_CN, 'FAILED', Step.IssueCertificate, FailureReason.CsrRejected)).toBeDefined();
      expect(lineWith(io.stdout, REFUSES, 'FAILED', Step.DeliverCertificate, FailureReason.DeviceError)).toBeDefined();
      for (const thing of HEALTHY) expect(lineWith(io.stdout, thing, 'SUCCEEDED', Step.Rotated)).toBeDefined();

      const report = await cliJson<Extract<StatusReport, { kind: 'fleet' }>>('status');
      expect(report.counts).toEqual({ IN_PROGRESS: 0, SUCCEEDED: 2, FAILED: 2 });
      expect(report.total).toBe(4);
      const byThing = Object.fromEntries(report.rows.map((r) => [r.thing, { status: r.status, step: r.step, reason: r.reason ?? null, attempts: r.attempts }]));
      expect(byThing).toEqual({
        [HEALTHY[0]]: { status: RotationStatus.Succeeded, step: Step.Rotated, reason: null, attempts: 1 },
        [HEALTHY[1]]: { status: RotationStatus.Succeeded, step: Step.Rotated, reason: null, attempts: 1 },
        [WRONG_CN]: { status: RotationStatus.Failed, step: Step.IssueCertificate, reason: FailureReason.CsrRejected, attempts: 1 },
        [REFUSES]: { status: RotationStatus.Failed, step: Step.DeliverCertificate, reason: FailureReason.DeviceError, attempts: 1 },
      });
    });

    it('--status FAILED lists exactly the two failed devices', async () => {
      const { code, io } = await cli('status', '--status', 'FAILED');
      expect(code).toBe(0);
      const listed = io.stdout.filter((line) => THINGS.some((thing) => line.startsWith(`${thing} `)));
      expect(listed.map((line) => line.split(/\s+/)[0]).sort()).toEqual([REFUSES, WRONG_CN]);

      const report = await cliJson<Extract<StatusReport, { kind: 'fleet' }>>('status', '--status', 'failed');
      expect(report.filter).toBe(RotationStatus.Failed);
      expect(report.rows.map((r) => r.thing).sort()).toEqual([REFUSES, WRONG_CN]);
      expect(report.truncated).toBe(false);
    });

    it('--thing shows the current record with its cause and the history with a trace command per execution', async () => {
      const { code, io } = await cli('status', '--thing', WRONG_CN);
      expect(code).toBe(0);
      expect(io.stdout[0]).toBe(`thing ${WRONG_CN}`);
      expect(io.stdout).toContain(`  status     FAILED (${Step.IssueCertificate})`);
      expect(lineWith(io.stdout, '  reason     CSR_REJECTED: ', CsrRejection.WrongCommonName)).toBeDefined();
      expect(io.stdout).toContain('history (1, newest first)');
      const auditArn = auditExecutions.get(WRONG_CN)?.executionArn as string;
      expect(lineWith(io.stdout, 'FAILED', Step.IssueCertificate, 'audit', `rotor trace --local --execution ${auditArn}`)).toBeDefined();

      const report = await cliJson<Extract<StatusReport, { kind: 'thing' }>>('status', '--thing', REFUSES);
      expect(report.current).toMatchObject({ status: RotationStatus.Failed, step: Step.DeliverCertificate, reason: FailureReason.DeviceError, attempts: 1 });
      expect(report.current?.cause).toMatch(/refused by fault injection/);
      expect(report.history).toHaveLength(1);
      expect(report.history[0]).toMatchObject({ outcome: RotationStatus.Failed, reason: FailureReason.DeviceError, trigger: 'audit', oldCertificateId: devices.get(REFUSES)?.certificateId });
    });
  });

  describe('trace', () => {
    const FAILURE_PATH = [
      Step.ClaimDevice, Step.ResumeOrRotate, Step.RequestCsr, Step.IssueCertificate, Step.RollBack, Step.RollBackPaced, Step.RollBackDone, Step.RecordFailure, Step.Escalate, Step.RotationFailed,
    ];

    it('--thing shows the path into Issue certificate, the CSR rule that failed, and the failure states after it', async () => {
      const { code, io } = await cli('trace', '--thing', WRONG_CN);
      expect(code).toBe(0);
      expect(io.stderr).toEqual([]);
      expect(io.stdout[0]).toBe(`execution ${auditExecutions.get(WRONG_CN)?.executionArn}`);
      expect(io.stdout[1]).toMatch(/^status {4}FAILED after \S+$/);
      // The timeline rows, in the order the states were entered.
      const rows = io.stdout.filter((line) => /^\d{4}-\d\d-\d\d /.test(line));
      expect(rows.map((row) => FAILURE_PATH.find((step) => row.includes(` ${step} `)))).toEqual(FAILURE_PATH);
      expect(lineWith(rows, Step.IssueCertificate, `failed: ${ErrorName.CsrRejected}`)).toBeDefined();
      expect(lineWith(io.stdout, `failed in ${Step.IssueCertificate}: ${ErrorName.CsrRejected} — ${CsrRejection.WrongCommonName}`)).toBeDefined();
      expect(lineWith(io.stdout, `execution error: ${FailureReason.CsrRejected}`)).toBeDefined();
    });

    it('--json carries the same path and failure', async () => {
      const trace = await cliJson<Trace>('trace', '--thing', WRONG_CN);
      expect(trace.status).toBe('FAILED');
      expect(trace.entries.map((e) => e.state)).toEqual(FAILURE_PATH);
      const issue = trace.entries.find((e) => e.state === Step.IssueCertificate);
      expect(issue?.outcome).toBe('failed');
      expect(issue?.errors.map((e) => e.error)).toEqual([ErrorName.CsrRejected]);
      expect(trace.failure).toMatchObject({ state: Step.IssueCertificate, error: ErrorName.CsrRejected, executionError: FailureReason.CsrRejected });
      expect(trace.failure?.cause).toMatch(new RegExp(`^${CsrRejection.WrongCommonName}: `));
      expect(trace.failure?.cause).toContain(`${WRONG_CN}-impostor`);
    });
  });

  describe('retry', () => {
    it('once the device is fixed, retry --thing starts one execution that rotates it; a second retry starts nothing', async () => {
      const device = devices.get(WRONG_CN) as Device;
      // "Fix" the device: the faulty firmware stops, a healthy one boots on the same disk. The
      // failed rotation was rolled back, so its current pair is still the provisioned one.
      await fleet?.agents.find((a) => a.thingName === WRONG_CN)?.stop();
      const stored = await new FileKeyStore(device.stateDir).load();
      expect(stored.current?.certPem).toBe(device.certPem);
      expect(stored.pending).toBeUndefined();
      fixedFleet = new Fleet({
        endpoint: { host: aws.endpoints.mqtt.host, port: aws.endpoints.mqtt.port, caPem: aws.caPem },
        devices: [{ thingName: WRONG_CN, stateDir: device.stateDir }],
      });
      await fixedFleet.start();
      const agent = fixedFleet.agents[0];
      await until(() => agent.snapshot.connection.status === 'connected', 10_000, `${WRONG_CN} to reconnect with its old certificate`);

      const before = await executionCount();
      const first = await cli('retry', '--thing', WRONG_CN, '--yes');
      expect({ code: first.code, stderr: first.io.stderr }).toEqual({ code: 0, stderr: [] });
      expect(first.io.stdout[first.io.stdout.length - 1]).toBe('1 started, 0 skipped, 0 failed');
      const startedLine = lineWith(first.io.stdout, `started  ${WRONG_CN}: `) as string;
      expect(startedLine).toBeDefined();
      const retryArn = startedLine.slice(`started  ${WRONG_CN}: `.length);
      expect(await executionCount()).toBe(before + 1);

      const retried = await ended(retryArn);
      expect({ status: retried.status, error: retried.error }).toEqual({ status: 'SUCCEEDED', error: undefined });
      expect(JSON.parse(retried.input)).toEqual({ thingName: WRONG_CN, certificateId: device.certificateId, trigger: 'retry' });

      const report = await cliJson<Extract<StatusReport, { kind: 'thing' }>>('status', '--thing', WRONG_CN);
      expect(report.current).toMatchObject({ status: RotationStatus.Succeeded, step: Step.Rotated, attempts: 2, executionArn: retryArn });
      expect(report.history.map((h) => `${h.outcome} ${h.trigger}`)).toEqual(['SUCCEEDED retry', 'FAILED audit']);
      const fleetReport = await cliJson<Extract<StatusReport, { kind: 'fleet' }>>('status');
      expect(fleetReport.counts).toEqual({ IN_PROGRESS: 0, SUCCEEDED: 3, FAILED: 1 });

      const second = await cli('retry', '--thing', WRONG_CN, '--yes');
      expect({ code: second.code, stderr: second.io.stderr }).toEqual({ code: 0, stderr: [] });
      expect(second.io.stdout).toEqual([
        `skipped  ${WRONG_CN}: the last rotation (${report.current?.rotationId}) succeeded; nothing to retry`,
        '0 started, 1 skipped (NOT_FAILED 1), 0 failed',
      ]);
      expect(await executionCount()).toBe(before + 1);
    });

    it('retry --all-failed --dry-run lists only the device still failed and starts nothing', async () => {
      const before = await executionCount();
      const { code, io } = await cli('retry', '--all-failed', '--dry-run');
      expect({ code, stderr: io.stderr }).toEqual({ code: 0, stderr: [] });
      expect(io.stdout[0]).toBe('would start 1 execution(s):');
      const failed = await cliJson<Extract<StatusReport, { kind: 'thing' }>>('status', '--thing', REFUSES);
      const retryName = retryExecutionName(REFUSES, devices.get(REFUSES)?.certificateId as string, failed.current?.rotationId as string);
      expect(io.stdout[1]).toBe(`  ${REFUSES}: failed in ${Step.DeliverCertificate} (${FailureReason.DeviceError}) → start ${retryName}`);
      expect(io.stdout[io.stdout.length - 1]).toBe('dry run: 1 would start, 0 skipped; nothing was started');

      const summary = await cliJson<RetrySummary>('retry', '--all-failed', '--dry-run');
      expect(summary.planned.map((p) => p.thing)).toEqual([REFUSES]);
      expect(summary.started).toBe(0);
      expect(await executionCount()).toBe(before);
    });
  });

  describe('expiring', () => {
    it('lists the still-failed device\'s old certificate, not the rotated devices\' new ones', async () => {
      const refused = devices.get(REFUSES) as Device;
      const report = await cliJson<ExpiringReport>('expiring', '--days', '30');
      // From the audit's findings: it flagged every device's certificate; the rotated devices'
      // successes since the audit take theirs off the list, the refused one's FAILED record
      // names its thing. No DescribeCertificate, no ListPrincipalThings.
      expect(report.source).toBe('audit-findings');
      expect(report.scanned).toBe(4);
      expect(report.rotatedSinceAudit).toBe(3);
      expect(report.certificates).toHaveLength(1);
      expect(report.sources.calls['iot:DescribeCertificate']).toBeUndefined();
      expect(report.sources.calls['iot:ListPrincipalThings']).toBeUndefined();
      expect(report.certificates[0]).toMatchObject({
        certificateId: refused.certificateId,
        things: [REFUSES],
        expired: false,
        rotations: { [REFUSES]: { status: RotationStatus.Failed, step: Step.DeliverCertificate, inFlight: false } },
      });
      expect(report.certificates[0].daysLeft).toBeGreaterThanOrEqual(9);
      expect(report.certificates[0].daysLeft).toBeLessThanOrEqual(10);

      const { code, io } = await cli('expiring', '--days', '30');
      expect(code).toBe(0);
      expect(io.stdout[0]).toBe('1 of 4 certificate(s) the audit flagged are due: expiring within 30 day(s) or past the age threshold (3 rotated since the audit)');
      expect(io.stdout).toContain('Source:');

      // --describe: every ACTIVE certificate described, as before (the rotated ones hold only their new one).
      const exact = await cli('expiring', '--days', '30', '--describe', '--json');
      expect(exact.code).toBe(0);
      expect(exact.io.stderr).toEqual([DESCRIBE_WARNING]);
      const described = JSON.parse(exact.io.stdout.join('\n')) as ExpiringReport;
      expect(described).toMatchObject({ source: 'describe', scanned: 4 });
      expect(described.certificates.map((c) => c.certificateId)).toEqual([refused.certificateId]);
      const row = lineWith(io.stdout, refused.certificateId.slice(0, 12), REFUSES) as string;
      expect(row).toBeDefined();
      // The rotation of this certificate failed and nothing has retried it yet.
      expect(row).toMatch(/\s{2}no rotation in flight \(last failed\)$/);
    });
  });

  describe('bad arguments', () => {
    it.each([
      [['retry'], 'rotor: say which devices to retry: --thing NAME or --all-failed'],
      [['trace', '--thing', WRONG_CN, '--execution', 'arn:aws:states:us-east-1:000000000000:execution:rotor-rotate-device:x'], 'rotor: use either --thing NAME or --execution ARN, not both'],
      [['status', '--status', 'BOGUS'], 'rotor: --status must be one of IN_PROGRESS, SUCCEEDED, FAILED; got "BOGUS"'],
      [['expiring', '--days', '-1'], 'rotor: --days must be a whole number from 1 to 3650; got "-1"'],
    ])('%j exits 2 with one line on stderr', async (args, message) => {
      const before = await executionCount();
      const { code, io } = await cli(...args);
      expect({ code, stderr: io.stderr, stdout: io.stdout }).toEqual({ code: 2, stderr: [message], stdout: [] });
      expect(await executionCount()).toBe(before);
    });

    it.each([['status'], ['trace'], ['retry']])('%s --thing of an unknown thing exits 3 with one line on stderr', async (command) => {
      const { code, io } = await cli(command, '--thing', 'nobody-here');
      expect({ code, stdout: io.stdout }).toEqual({ code: 3, stdout: [] });
      expect(io.stderr).toEqual([`rotor: no rotation recorded for thing nobody-here in table ${aws.endpoints.tableName}`]);
    });
  });
});
