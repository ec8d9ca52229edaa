import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IoTClient } from '@aws-sdk/client-iot';
import { SFNClient } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { OperatorDeps } from '../../../cli/operator/index.js';
import type { OperatorIo, Progress } from '../../../cli/operator/operator-io.js';
import type { Target, TargetOptions } from '../../../cli/operator/target.js';
import type { RotationRecord } from '../../../domain/records.js';
import { CURRENT_SK, thingPk } from '../../../domain/records.js';
import type { RotationStatus } from '../../../domain/rotation.js';

/** Real SDK clients (their `send` is replaced by aws-sdk-client-mock in each test). */
export function fakeClients(): Target['clients'] {
  const config = { region: 'eu-west-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } };
  return { ddb: DynamoDBDocumentClient.from(new DynamoDBClient(config)), sfn: new SFNClient(config), iot: new IoTClient(config) };
}

export const STATE_MACHINE_ARN = 'arn:aws:states:eu-west-1:123456789012:stateMachine:rotor-rotate-device';

export function fakeTarget(overrides: Partial<Target> = {}): Target & { seen: TargetOptions[] } {
  return {
    kind: 'aws',
    region: 'eu-west-1',
    tableName: 'rotor-rotations',
    clients: fakeClients(),
    stateMachineArn: async () => STATE_MACHINE_ARN,
    destroy: () => undefined,
    seen: [],
    ...overrides,
  };
}

export interface CapturedIo extends OperatorIo {
  stdout: string[];
  stderr: string[];
  questions: string[];
  ticks: number;
}

export function capturedIo(options: { interactive?: boolean; answer?: boolean } = {}): CapturedIo {
  const io: CapturedIo = {
    stdout: [],
    stderr: [],
    questions: [],
    ticks: 0,
    interactive: options.interactive ?? false,
    out: (line) => void io.stdout.push(line),
    err: (line) => void io.stderr.push(line),
    confirm: async (question) => {
      io.questions.push(question);
      return options.answer ?? false;
    },
    progress: (): Progress => ({ tick: () => void (io.ticks += 1), stop: () => undefined }),
  };
  return io;
}

export function operatorDeps(target: Target, io: CapturedIo, now = new Date('2025-06-01T00:00:00Z')): Partial<OperatorDeps> {
  return {
    io,
    connect: async (options) => {
      (target as Target & { seen?: TargetOptions[] }).seen?.push(options);
      return target;
    },
    now: () => now,
    backoff: { sleep: async () => undefined, random: () => 0 },
  };
}

let counter = 0;
/** A current record in the shape the state machine and record-failure write. */
export function record(thing: string, status: RotationStatus, extra: Partial<RotationRecord> = {}): RotationRecord {
  counter += 1;
  const rotationId = `${thing}-a${String(counter).padStart(20, '0')}`;
  return {
    pk: thingPk(thing),
    sk: CURRENT_SK,
    thingName: thing,
    status,
    step: status === 'FAILED' ? 'Request CSR' : status === 'SUCCEEDED' ? 'Rotated' : 'Deliver certificate',
    rotationId,
    executionArn: `arn:aws:states:eu-west-1:123456789012:execution:rotor-rotate-device:${rotationId}`,
    oldCertificateId: 'a'.repeat(63) + String(counter % 10),
    trigger: 'audit',
    startedAt: `2025-05-0${(counter % 9) + 1}T10:00:00.000Z`,
    updatedAt: `2025-05-0${(counter % 9) + 1}T10:30:00.000Z`,
    attempts: 1,
    ...(status === 'FAILED' ? { reason: 'NO_CSR_RESPONSE', cause: 'no csr_res after 4 requests', finishedAt: '2025-05-01T11:00:00.000Z' } : {}),
    ...extra,
  };
}
