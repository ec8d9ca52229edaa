import { ListCertificatesByCACommand, ListPrincipalThingsCommand, type IoTClient } from '@aws-sdk/client-iot';
import { StartExecutionCommand, type SFNClient } from '@aws-sdk/client-sfn';
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { Context } from 'aws-lambda';
import {
  caRolloverExecutionName,
  CaRolloverReason,
  CaRolloverStatus,
  devicesLeftMessage,
  emptyTally,
  MAX_LISTED,
  passVerdict,
  rolloverEscalationSubject,
  rolloverPk,
  ROLLOVER_SK,
  tallyDevice,
  type MoveTally,
  type PassVerdict,
  type ResolvedCas,
  type StuckDevice,
} from '../domain/ca-rollover.js';
import { InvalidInput, Trigger, type RotationInput } from '../domain/index.js';
import { isNamed, RESOURCE_NOT_FOUND } from './aws/errors.js';
import { resolvedCasField, rolloverIdField, rolloverLogKeys } from './core/ca-rollover-input.js';
import type { Clock } from './core/clock.js';
import { requiredEnv } from './core/environment.js';
import { describeCertificate } from './core/certificates.js';
import { once, rotorHandler } from './core/handler.js';
import { objectInput, optionalStringField, stringField, type Fields } from './core/input.js';
import { pacedRuntime, type Pacing } from './core/pacing.js';
import type { TableDeps } from './core/rotation-table.js';
import { baseDeps, tracedIot, tracedSfn } from './core/runtime-deps.js';
import { observability, type Telemetry } from './core/telemetry.js';

/** What the 'Move devices' state sends: the rollover, and where this pass stands. */
export interface MoveDevicesEvent {
  rolloverId: string;
  executionArn: string;
  cas: ResolvedCas;
  /** The rollover execution's start ($$.Execution.StartTime) and how long it may wait for devices. */
  startedAt: Date;
  maxWaitSeconds: number;
  /** From `pass` (the previous result, or {} at a pass's start): the page to continue from and the tally of the pages before it (the last result's); empty at a pass's start. */
  marker?: string;
  tally: MoveTally;
}

export interface MoveDevicesResult {
  /** True while the pass is not complete: the state machine calls again with this result as `pass`. */
  more: boolean;
  /** Where to continue (absent: from the first page). */
  marker?: string;
  tally: MoveTally;
  /** At a pass's end: what the 'Devices left?' choice does. */
  verdict?: PassVerdict;
  escalation?: { subject: string; message: string };
}

export interface MoveDevicesDeps extends TableDeps {
  iot: IoTClient;
  sfn: SFNClient;
  /** The rotate-device state machine. */
  stateMachineArn: string;
  clock: Clock;
  telemetry: Telemetry;
  invocation: { remainingMs: () => number };
  safetyMarginMs?: number;
  pageSize?: number;
  /** The shared budget start-rotations admits its starts on (docs/fleet-scale.md); undefined: unpaced. */
  pacing?: Pacing;
}

export const DEFAULT_SAFETY_MARGIN_MS = 60_000;
/** ListCertificatesByCA allows up to 250. */
export const DEFAULT_PAGE_SIZE = 100;
/** Things one certificate starts rotations for, at most (as start-rotations; more is a shared-certificate incident). */
const MAX_THINGS_PER_CERTIFICATE = 10;
/** How much older than this invocation an execution's start must be to count as started before. */
const CLOCK_TOLERANCE_MS = 2_000;

function tallyField(input: Fields): MoveTally {
  if (input.tally === undefined || input.tally === null) return emptyTally();
  const tally = objectInput(input.tally, 'tally');
  const count = (field: keyof MoveTally): number => {
    const value = tally[field];
    if (!Number.isInteger(value) || (value as number) < 0) throw new InvalidInput(`tally.${field} must be a whole number`);
    return value as number;
  };
  const stuck = tally.stuckDevices;
  if (!Array.isArray(stuck) || stuck.length > MAX_LISTED) throw new InvalidInput(`tally.stuckDevices must be a list of at most ${MAX_LISTED}`);
  const stuckDevices: StuckDevice[] = stuck.map((item) => {
    const device = objectInput(item, 'tally.stuckDevices[]');
    return { thingName: stringField(device, 'thingName', 128), certificateId: stringField(device, 'certificateId', 64) };
  });
  return { left: count('left'), started: count('started'), inFlight: count('inFlight'), stuck: count('stuck'), stuckDevices };
}

export function parseMoveDevicesEvent(event: unknown): MoveDevicesEvent {
  const input = objectInput(event, 'ca-move-devices input');
  const startedAt = new Date(stringField(input, 'startedAt', 40));
  if (Number.isNaN(startedAt.getTime())) throw new InvalidInput('startedAt must be an ISO 8601 time');
  const maxWaitSeconds = input.maxWaitSeconds;
  if (!Number.isInteger(maxWaitSeconds) || (maxWaitSeconds as number) <= 0) throw new InvalidInput('maxWaitSeconds must be a positive whole number');
  const pass = objectInput(input.pass ?? {}, 'pass');
  const marker = optionalStringField(pass, 'marker', 4096);
  return {
    rolloverId: rolloverIdField(input),
    executionArn: stringField(input, 'executionArn', 2048),
    cas: resolvedCasField(input),
    startedAt,
    maxWaitSeconds: maxWaitSeconds as number,
    ...(marker ? { marker } : {}),
    tally: tallyField(pass),
  };
}

type Outcome = 'started' | 'inFlight' | 'stuck';

class Pass {
  private readonly began: Date;
  /** Admitted start times not used yet (admission hands out several at once). */
  private readonly slots: number[] = [];
  private pagesDone = 0;

  constructor(
    private readonly deps: MoveDevicesDeps,
    private readonly event: MoveDevicesEvent,
  ) {
    this.began = deps.clock.now();
  }

  private timeLeftMs(): number {
    return this.deps.invocation.remainingMs() - (this.deps.safetyMarginMs ?? DEFAULT_SAFETY_MARGIN_MS);
  }

  /**
   * Pages through the old CA's certificates from the event's marker. A page's devices are
   * tallied only once the page is done: a page cut short (out of time while waiting for
   * admission) is looked at again whole by the next invocation, where the rotations it started
   * count as in flight.
   */
  async run(): Promise<{ more: boolean; marker?: string; tally: MoveTally }> {
    let { marker } = this.event;
    let tally = this.event.tally;
    for (;;) {
      if (this.pagesDone > 0 && this.timeLeftMs() <= 0) return { more: true, ...(marker ? { marker } : {}), tally };
      const page = await this.deps.iot.send(
        new ListCertificatesByCACommand({ caCertificateId: this.event.cas.oldCaCertificateId, pageSize: this.deps.pageSize ?? DEFAULT_PAGE_SIZE, marker }),
      );
      const active = (page.certificates ?? []).filter((certificate) => certificate.status === 'ACTIVE' && certificate.certificateId && certificate.certificateArn);
      const pageTally = await this.movePage(active.map((c) => ({ certificateId: c.certificateId as string, certificateArn: c.certificateArn as string })), tally);
      if (!pageTally) return { more: true, ...(marker ? { marker } : {}), tally };
      tally = pageTally;
      this.pagesDone++;
      if (!page.nextMarker) return { more: false, tally };
      marker = page.nextMarker;
    }
  }

  private async movePage(certificates: { certificateId: string; certificateArn: string }[], before: MoveTally): Promise<MoveTally | undefined> {
    let tally = before;
    for (const certificate of certificates) {
      const stillActive = once(() => this.stillActive(certificate.certificateId));
      const things = await this.thingsOf(certificate.certificateArn);
      if (things.length === 0) {
        // No thing to rotate it for: the CA must stay ACTIVE for it, and the operator must know.
        if (await stillActive()) tally = tallyDevice(tally, 'stuck', { thingName: '(no thing)', certificateId: certificate.certificateId });
        continue;
      }
      for (const thingName of things) {
        if (!(await this.admit())) return undefined;
        const outcome = await this.start(thingName, certificate.certificateId, things);
        if (outcome === 'stuck' && !(await stillActive())) continue;
        tally = tallyDevice(tally, outcome, { thingName, certificateId: certificate.certificateId });
      }
    }
    return tally;
  }

  /**
   * Whether a certificate the page listed ACTIVE still is, asked before it counts as stuck. The
   * page is a snapshot: between the listing and the look at its things (or at its rotation), the
   * device's rotation may have retired it, which sets it INACTIVE, then detaches the thing, then
   * deletes it. Counted as it was listed, a device that just moved showed as "(no thing)" or as
   * ended under the old CA, and on the last pass the rollover escalated CA_DEVICES_LEFT for it.
   * Asked after the look, ACTIVE is the truth: retire and roll back never detach an ACTIVE
   * certificate, and Rotor never sets one ACTIVE again.
   */
  private async stillActive(certificateId: string): Promise<boolean> {
    return (await describeCertificate(this.deps.iot, certificateId))?.status === 'ACTIVE';
  }

  private async thingsOf(certificateArn: string): Promise<string[]> {
    try {
      const out = await this.deps.iot.send(new ListPrincipalThingsCommand({ principal: certificateArn, maxResults: MAX_THINGS_PER_CERTIFICATE }));
      return out.things ?? [];
    } catch (error) {
      if (isNamed(error, RESOURCE_NOT_FOUND)) return [];
      throw error;
    }
  }

  /**
   * The rotation of this certificate by this rollover: started now, still running from an
   * earlier pass (Step Functions answers a repeated start of a running execution with it), or
   * ended with the device still under the old CA (ExecutionAlreadyExists): stuck. A device that
   * got a certificate of the old CA after all (signed just before the switch) has a new
   * certificate id, so a new name: it is started again.
   */
  private async start(thingName: string, certificateId: string, things: string[]): Promise<Outcome> {
    const input: RotationInput = { thingName, certificateId, trigger: Trigger.CaRollover, certificateThings: things };
    try {
      const out = await this.deps.sfn.send(
        new StartExecutionCommand({
          stateMachineArn: this.deps.stateMachineArn,
          name: caRolloverExecutionName(this.event.rolloverId, thingName, certificateId),
          input: JSON.stringify(input),
        }),
      );
      if (out.startDate && out.startDate.getTime() < this.began.getTime() - CLOCK_TOLERANCE_MS) return 'inFlight';
      return 'started';
    } catch (error) {
      if (isNamed(error, 'ExecutionAlreadyExists')) return 'stuck';
      throw error;
    }
  }

  /**
   * Waits until the shared budget admits one more rotation, as start-rotations' starts are
   * admitted (PacingStore.admitStarts: the start pace, and no API-bound step queued too far
   * ahead). False when this invocation ran out of time first.
   */
  private async admit(): Promise<boolean> {
    const { pacing, clock, telemetry } = this.deps;
    if (!pacing) return true;
    for (;;) {
      const slot = this.slots.shift();
      if (slot !== undefined) {
        const waitMs = slot - clock.now().getTime();
        if (waitMs > 0) await clock.sleep(waitMs);
        return true;
      }
      let batch: Awaited<ReturnType<typeof pacing.store.admitStarts>>;
      try {
        batch = await pacing.store.admitStarts(DEFAULT_PAGE_SIZE);
      } catch (error) {
        // Pacing must not stop a rollover: unpaced, starts go at once.
        telemetry.log.error('pacing budget unavailable; starting unpaced', { error: error instanceof Error ? error.message : String(error) });
        return true;
      }
      if (batch.atMs.length) {
        this.slots.push(...batch.atMs);
        continue;
      }
      const waitMs = Math.max(1, Math.ceil((batch.retryAtMs ?? batch.nowMs) - batch.nowMs));
      // The first page of an invocation always progresses, into its margin if need be.
      const available = this.pagesDone > 0 ? this.timeLeftMs() : this.deps.invocation.remainingMs() - 5_000;
      if (available <= 0) return false;
      await clock.sleep(Math.min(waitMs, available));
    }
  }
}

/**
 * Step (c) of the rollover, one pass at a time: every ACTIVE certificate under the old CA gets
 * a rotation through the normal rotate-device workflow (paced like the audit's starts), and the
 * pass counts what is left. The state machine loops over pages (marker), waits between passes
 * and decides with the verdict: nothing left → deactivate; still moving → wait; else escalate.
 */
export async function moveDevices(event: unknown, deps: MoveDevicesDeps): Promise<MoveDevicesResult> {
  const parsed = parseMoveDevicesEvent(event);
  const { more, marker, tally } = await new Pass(deps, parsed).run();
  if (more) return { more, ...(marker ? { marker } : {}), tally };

  const now = deps.clock.now();
  const pastDeadline = now.getTime() >= parsed.startedAt.getTime() + parsed.maxWaitSeconds * 1000;
  const verdict = passVerdict(tally, pastDeadline);
  await recordPass(deps, parsed, tally, verdict, now);
  deps.telemetry.log.info('rollover pass done', { oldCaCertificateId: parsed.cas.oldCaCertificateId, verdict, left: tally.left, started: tally.started, inFlight: tally.inFlight, stuck: tally.stuck });
  if (verdict !== 'escalate') return { more: false, tally, verdict };
  return {
    more: false,
    tally,
    verdict,
    escalation: { subject: rolloverEscalationSubject(parsed.cas.oldCaCertificateId, CaRolloverReason.DevicesLeft), message: devicesLeftMessage(parsed.cas, tally, parsed.executionArn) },
  };
}

/** The progress item `rotor ca status` reads: devices at the first complete pass, and now. */
async function recordPass(deps: MoveDevicesDeps, event: MoveDevicesEvent, tally: MoveTally, verdict: PassVerdict, now: Date): Promise<void> {
  await deps.db.send(
    new UpdateCommand({
      TableName: deps.tableName,
      Key: { pk: rolloverPk(event.cas.oldCaCertificateId), sk: ROLLOVER_SK },
      UpdateExpression: 'SET devicesAtStart = if_not_exists(devicesAtStart, :left), devicesLeft = :left, stuckDevices = :stuck, #status = :status, updatedAt = :now',
      // Only the rollover that owns the item writes it (a newer one of the same CA took it over).
      ConditionExpression: 'rolloverId = :rid',
      ExpressionAttributeNames: { '#status': 'status' },
      ExpressionAttributeValues: {
        ':left': tally.left,
        ':stuck': tally.stuckDevices,
        ':status': verdict === 'escalate' ? CaRolloverStatus.DevicesLeft : CaRolloverStatus.Moving,
        ':now': now.toISOString(),
        ':rid': event.rolloverId,
      },
    }),
  );
}

const obs = observability('ca-move-devices');
const runtime = once(() => {
  const base = baseDeps(obs);
  const paced = pacedRuntime(base);
  return {
    ...base,
    iot: paced.observe(tracedIot(obs), 'iot'),
    sfn: paced.observe(tracedSfn(obs), 'states'),
    stateMachineArn: requiredEnv('STATE_MACHINE_ARN'),
    pacing: paced.pacing,
  };
});

export const handler = rotorHandler({ observability: obs, step: 'Move devices', logKeys: rolloverLogKeys }, (event: unknown, context: Context) =>
  moveDevices(event, { ...runtime(), invocation: { remainingMs: () => context.getRemainingTimeInMillis() } }),
);
