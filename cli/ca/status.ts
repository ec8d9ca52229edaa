import { DescribeCACertificateCommand, ListCertificatesByCACommand, type IoTClient } from '@aws-sdk/client-iot';
import { DescribeExecutionCommand, type SFNClient } from '@aws-sdk/client-sfn';
import { GetCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { devicesMoved, rolloverPk, ROLLOVER_SK, type RolloverProgress, type StuckDevice } from '../../domain/ca-rollover.js';
import { NotFoundError } from '../operator/exit-codes.js';

/** Where a CA rollover stands: `rotor ca status --ca OLD`. */
export interface CaStatusReport {
  oldCaCertificateId: string;
  /** The old CA's status in IoT now (ACTIVE until the rollover deactivates it). */
  oldCaStatus: string;
  /** ACTIVE device certificates under the old CA now, counted live. */
  devicesLeft: number;
  /** Under the old CA when the rollover's first pass completed, and not any more. */
  devicesMoved: number;
  rollover?: {
    rolloverId: string;
    executionArn: string;
    executionStatus: string;
    status: string;
    newPrivateCaArn: string;
    startedAt: string;
    updatedAt: string;
    stuckDevices: StuckDevice[];
  };
}

export interface CaStatusClients {
  ddb: DynamoDBDocumentClient;
  sfn: SFNClient;
  iot: IoTClient;
  tableName: string;
}

async function activeUnder(iot: IoTClient, caCertificateId: string): Promise<number> {
  let marker: string | undefined;
  let count = 0;
  do {
    const page = await iot.send(new ListCertificatesByCACommand({ caCertificateId, pageSize: 250, marker }));
    count += (page.certificates ?? []).filter((certificate) => certificate.status === 'ACTIVE').length;
    marker = page.nextMarker;
  } while (marker);
  return count;
}

export async function caStatus(clients: CaStatusClients, oldCaCertificateId: string): Promise<CaStatusReport> {
  let oldCaStatus: string;
  try {
    const described = await clients.iot.send(new DescribeCACertificateCommand({ certificateId: oldCaCertificateId }));
    oldCaStatus = described.certificateDescription?.status ?? 'UNKNOWN';
  } catch (error) {
    if ((error as { name?: string }).name === 'ResourceNotFoundException') throw new NotFoundError(`no CA certificate ${oldCaCertificateId} is registered with AWS IoT`);
    throw error;
  }
  const devicesLeft = await activeUnder(clients.iot, oldCaCertificateId);
  const item = (await clients.ddb.send(new GetCommand({ TableName: clients.tableName, Key: { pk: rolloverPk(oldCaCertificateId), sk: ROLLOVER_SK }, ConsistentRead: true }))).Item as RolloverProgress | undefined;
  if (!item) return { oldCaCertificateId, oldCaStatus, devicesLeft, devicesMoved: 0 };
  let executionStatus = 'UNKNOWN';
  try {
    executionStatus = (await clients.sfn.send(new DescribeExecutionCommand({ executionArn: item.executionArn }))).status ?? 'UNKNOWN';
  } catch {
    // Executions are kept 90 days; the progress item longer.
  }
  return {
    oldCaCertificateId,
    oldCaStatus,
    devicesLeft,
    devicesMoved: devicesMoved({ devicesAtStart: item.devicesAtStart, devicesLeft }),
    rollover: {
      rolloverId: item.rolloverId,
      executionArn: item.executionArn,
      executionStatus,
      status: item.status,
      newPrivateCaArn: item.newPrivateCaArn,
      startedAt: item.startedAt,
      updatedAt: item.updatedAt,
      stuckDevices: item.stuckDevices ?? [],
    },
  };
}

export function formatCaStatus(report: CaStatusReport): string[] {
  const lines = [
    `old CA          ${report.oldCaCertificateId}  ${report.oldCaStatus}`,
    `devices moved   ${report.devicesMoved}`,
    `devices left    ${report.devicesLeft}  (ACTIVE certificates under the old CA now)`,
  ];
  const rollover = report.rollover;
  if (!rollover) return [...lines, 'no rollover of this CA has started'];
  lines.push(
    `rollover        ${rollover.rolloverId}  ${rollover.status} (execution ${rollover.executionStatus})`,
    `new CA          ${rollover.newPrivateCaArn}`,
    `started         ${rollover.startedAt}   last pass ${rollover.updatedAt}`,
  );
  if (rollover.stuckDevices.length) {
    lines.push('not moved (their rotation ended under the old CA):');
    for (const device of rollover.stuckDevices) lines.push(`  ${device.thingName}  ${device.certificateId}`);
  }
  return lines;
}
