import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IoTClient } from '@aws-sdk/client-iot';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { caRolloverExecutionName, caRolloverName } from '../../domain/ca-rollover.js';
import { SignerKind } from '../../domain/signer.js';
import { createCsrPem, DEFAULT_KEY_ALGORITHM, generatePrivateKeyPem } from '../../device-sim/keys.js';
import { certificateWhenIssued, ensureDefaultPrivateCa, ensureRegisteredPrivateCa, type DefaultPrivateCa, type LocalSignerOptions } from '../../local/pca/index.js';
import { DEVICE_POLICY_NAME, type LocalAws } from '../../local/runtime.js';
import { rolloverInput } from '../ca/index.js';
import { caStatus } from '../ca/status.js';
import type { StartedAudit } from './phases/audit.js';
import type { DemoDevice, ProvisionInput } from './phases/provision.js';
import { DemoError, mapLimited, until } from './phases/waiting.js';

/**
 * `rotor demo --scenario ca-rollover` (issue 11 part 5): every device starts on a certificate of
 * CA-1 — the local Private CA the runtime registers with IoT — and a CA rollover to CA-2, a
 * second local Private CA registered with IoT the way an operator registers one, moves each of
 * them through the normal rotate-device workflow, after which CA-1 must be INACTIVE. The rest of
 * the demo (the fleet, the invariant watcher, the end checks, the figures) is the rotation
 * demo's: only provisioning, the start and the rollover's own figures differ.
 */

/** The report's `caRollover`: where the rollover ended, as `rotor ca status` reads it. */
export interface CaRolloverFigures {
  /** The rollover execution (ca-rollover state machine) and how it ended. */
  executionArn: string;
  executionStatus: string;
  oldCaCertificateId: string;
  newCaCertificateId: string;
  newPrivateCaArn: string;
  /** Devices under CA-1 at the rollover's first pass that are not any more. */
  devicesMoved: number;
  /** ACTIVE device certificates still under CA-1. */
  devicesLeft: number;
  /** CA-1's status in IoT at the end: INACTIVE when the rollover is done. */
  oldCaStatus: string;
}

/** CA-2's idempotency token: a demo kept with --data-dir finds the same CA again. */
const CA_2_TOKEN = 'rotor-demo-ca-2';

/** `--scenario ca-rollover` needs the private-ca signer: with aws-iot no device would move to CA-2. */
export function caRolloverSigner(signer: LocalSignerOptions | undefined): LocalSignerOptions {
  if (signer && signer.kind !== SignerKind.PrivateCa) {
    throw new DemoError('--scenario ca-rollover signs with the local Private CA: leave out --signer, or give --signer private-ca');
  }
  return signer ?? { kind: SignerKind.PrivateCa };
}

/**
 * The factory line of this scenario: each device's key is made here, CA-1 (a local Private CA)
 * signs its CSR, and the certificate is registered with IoT under CA-1 (RegisterCertificate),
 * ACTIVE, with the device policy and the thing attached, as an operator's own CA would do it.
 */
export async function provisionUnderPrivateCa(runtime: LocalAws, caArn: string, input: ProvisionInput): Promise<DemoDevice[]> {
  const registry = runtime.iot.registry;
  const caPem = runtime.pca.caCertificate(caArn).certificatePem;
  const devices: DemoDevice[] = [];
  await mapLimited(input.names, 8, async (thingName) => {
    const keyPem = await generatePrivateKeyPem(DEFAULT_KEY_ALGORITHM);
    const certificateArn = await runtime.pca.issueCertificate({
      caArn,
      csrPem: await createCsrPem(keyPem, thingName),
      signingAlgorithm: 'SHA256WITHECDSA',
      validity: { Type: 'DAYS', Value: input.expiresInDays },
    });
    const certPem = await certificateWhenIssued(runtime.pca, caArn, certificateArn);
    const registered = registry.registerCertificate({ certificatePem: certPem, caCertificatePem: caPem, status: 'ACTIVE' });
    registry.createThing(thingName);
    registry.attachPolicy(DEVICE_POLICY_NAME, registered.certificateArn);
    registry.attachThingPrincipal(thingName, registered.certificateArn);
    const fault = input.faults.get(thingName);
    devices.push({ thingName, stateDir: join(input.workDir, 'devices', thingName), keyPem, certPem, certificateId: registered.certificateId, ...(fault ? { fault } : {}) });
  });
  return devices.sort((a, b) => a.thingName.localeCompare(b.thingName));
}

export interface StartedRollover extends StartedAudit {
  rolloverExecutionArn: string;
}

/**
 * The scenario's steps, for runDemo: provision under CA-1, start the rollover to CA-2 the way
 * `rotor ca rollover --from CA-1 --to CA-2` does, and at the end wait for the rollover
 * execution and read `rotor ca status`.
 */
export interface CaRolloverScenario {
  ca1: DefaultPrivateCa;
  ca2: DefaultPrivateCa;
  provision(input: ProvisionInput): Promise<DemoDevice[]>;
  start(devices: readonly DemoDevice[]): Promise<StartedRollover>;
  finish(started: StartedRollover, deadline: number, signal?: AbortSignal): Promise<{ caRollover: CaRolloverFigures }>;
}

function clientConfig(runtime: LocalAws) {
  return { endpoint: runtime.endpoints.awsEndpoint, region: runtime.endpoints.region, credentials: { accessKeyId: 'demo', secretAccessKey: 'demo' } };
}

export async function caRolloverScenario(runtime: LocalAws): Promise<CaRolloverScenario> {
  const rolloverMachine = runtime.endpoints.caRolloverStateMachineArn;
  if (!rolloverMachine) throw new DemoError('the local runtime has no ca-rollover state machine');
  // CA-1 is the runtime's own Private CA (found again, not made): the private-ca signer's ROTOR_PCA_ARN.
  const ca1 = await ensureDefaultPrivateCa(runtime.pca, runtime.iot.registry);
  const ca2 = await ensureRegisteredPrivateCa(runtime.pca, runtime.iot.registry, { commonName: 'Rotor Local Private CA 2', idempotencyToken: CA_2_TOKEN });
  return {
    ca1,
    ca2,
    provision: (input) => provisionUnderPrivateCa(runtime, ca1.certificateAuthorityArn, input),

    async start(devices) {
      const input = rolloverInput(ca1.certificateAuthorityArn, ca2.certificateAuthorityArn);
      const startedAt = Date.now();
      const name = caRolloverName(input.oldCa, input.newCa, new Date(startedAt).toISOString());
      const sfn = new SFNClient(clientConfig(runtime));
      let rolloverExecutionArn: string;
      try {
        const out = await sfn.send(new StartExecutionCommand({ stateMachineArn: rolloverMachine, name, input: JSON.stringify(input) }));
        rolloverExecutionArn = out.executionArn ?? '';
      } finally {
        sfn.destroy();
      }
      // The rotation each device gets is known in advance: one per (rollover, thing, certificate).
      const prefix = `${runtime.endpoints.stateMachineArn.replace(':stateMachine:', ':execution:')}:`;
      const executionArns = new Map(devices.map((d) => [d.thingName, prefix + caRolloverExecutionName(name, d.thingName, d.certificateId)]));
      return { taskId: name, startedAt, executionArns, rolloverExecutionArn };
    },

    async finish(started, deadline, signal) {
      // After the last device moved, the rollover looks again after its poll wait, then deactivates CA-1.
      let status = runtime.stepFunctions.findExecution(started.rolloverExecutionArn)?.status;
      await until(() => (status = runtime.stepFunctions.findExecution(started.rolloverExecutionArn)?.status) !== 'RUNNING', deadline, 'the CA rollover execution to end', signal).catch(
        (error: unknown) => {
          if (!(error instanceof DemoError) || signal?.aborted) throw error;
        },
      );
      const ddb = DynamoDBDocumentClient.from(new DynamoDBClient(clientConfig(runtime)));
      const sfn = new SFNClient(clientConfig(runtime));
      const iot = new IoTClient(clientConfig(runtime));
      try {
        const report = await caStatus({ ddb, sfn, iot, tableName: runtime.endpoints.tableName }, ca1.caCertificateId);
        return {
          caRollover: {
            executionArn: started.rolloverExecutionArn,
            executionStatus: status ?? 'UNKNOWN',
            oldCaCertificateId: ca1.caCertificateId,
            newCaCertificateId: ca2.caCertificateId,
            newPrivateCaArn: ca2.certificateAuthorityArn,
            devicesMoved: report.devicesMoved,
            devicesLeft: report.devicesLeft,
            oldCaStatus: report.oldCaStatus,
          },
        };
      } finally {
        for (const client of [ddb, sfn, iot]) client.destroy();
      }
    },
  };
}

/** The summary's lines for the rollover. */
export function formatCaRolloverSummary(figures: CaRolloverFigures | undefined): string[] {
  if (!figures) return [];
  return [
    `  CA rollover            ${figures.executionStatus}: ${figures.devicesMoved} devices moved, ${figures.devicesLeft} left under the old CA, old CA ${figures.oldCaStatus}`,
    `                         old ${figures.oldCaCertificateId.slice(0, 16)}… → new ${figures.newCaCertificateId.slice(0, 16)}… (${figures.newPrivateCaArn})`,
    `                         ${figures.executionArn}`,
  ];
}
