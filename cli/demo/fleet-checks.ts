import { connectAsync } from 'mqtt';
import { isRefusal } from '../../device-sim/transport.js';
import { CertificateStatus, certificateIdOf, type IotRegistry } from '../../local/iot/index.js';
import { readHoldings, spkiOfCertificate, spkiOfPrivateKey } from './key-holdings.js';

/**
 * The checks the demo makes once every rotation has ended, against the local IoT registry,
 * the devices' own key stores, the rotation table and the escalation topic. Each failed
 * check is one `CheckFailure`; the demo exits non-zero when there is any.
 */
export const CheckName = {
  /** Cloud rule 7, sampled while the fleet rotates and once more at the end. */
  Invariant: 'invariant',
  Finished: 'rotation-finished',
  HoldsActiveKey: 'holds-active-key',
  ConnectsWithCurrent: 'connects-with-current',
  OldCertificateGone: 'old-certificate-gone',
  OldCertificateRefused: 'old-certificate-refused',
  FailedKeepsOld: 'failed-device-keeps-old-certificate',
  FailureRecorded: 'failure-recorded',
  OneEscalation: 'one-escalation-per-failure',
  /** A device whose certificate an operator revoked mid-rotation: failed, escalated, and left with nothing that connects. */
  CutOffOnPurpose: 'cut-off-on-purpose',
  NoEscalationForSuccess: 'no-escalation-for-success',
  NoOrphans: 'no-orphan-certificates',
} as const;
export type CheckName = (typeof CheckName)[keyof typeof CheckName];

export interface CheckFailure {
  check: CheckName;
  /** Absent for fleet-wide checks (an orphan certificate belongs to no device). */
  thingName?: string;
  at: string;
  detail: string;
  /** For invariant breaches seen during the run: what made the watcher look. */
  trigger?: string;
}

export interface ProvisionedPair {
  keyPem: string;
  certPem: string;
  certificateId: string;
}

export interface CheckedDevice {
  thingName: string;
  stateDir: string;
  provisioned: ProvisionedPair;
  outcome: 'rotated' | 'failed' | 'unfinished';
}

/** The rotation table's current record, as far as these checks read it. */
export interface CurrentRecordView {
  status?: string;
  reason?: string;
}

export interface FleetCheckInput {
  registry: IotRegistry;
  devices: readonly CheckedDevice[];
  mqtt: { host: string; port: number; caPem: string };
  /** Reads the thing's current record (sk = current) from the rotation table. */
  currentRecord: (thingName: string) => Promise<CurrentRecordView | undefined>;
  /** Escalation messages published per thing. */
  escalations: ReadonlyMap<string, number>;
  /**
   * Devices an operator cut off on purpose (their old certificate revoked mid-rotation). For them
   * the invariant does not hold by design: they are checked for the security outcome instead.
   */
  cutOff?: ReadonlySet<string>;
  /** 'delete' (the default) or 'keep-inactive': what a retired certificate becomes. */
  retireMode: string;
  now?: () => Date;
  concurrency?: number;
}

export type ConnectResult = { ok: true } | { ok: false; refused: boolean; error: string };

/** A real mutual-TLS MQTT connect with the pair, as the device makes it, then a clean disconnect. */
export async function tryConnect(mqtt: FleetCheckInput['mqtt'], clientId: string, pair: { keyPem: string; certPem: string }): Promise<ConnectResult> {
  try {
    const client = await connectAsync({
      protocol: 'mqtts',
      host: mqtt.host,
      port: mqtt.port,
      protocolVersion: 4,
      clientId,
      // A probe must not take over, or wipe, the device's persistent session.
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: 5_000,
      key: pair.keyPem,
      cert: pair.certPem,
      ca: mqtt.caPem,
      rejectUnauthorized: true,
    });
    await client.endAsync();
    return { ok: true };
  } catch (error) {
    return { ok: false, refused: isRefusal(error), error: error instanceof Error ? error.message || String((error as { code?: unknown }).code) : String(error) };
  }
}

async function forEachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: Math.min(limit, queue.length) }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) await work(item);
    }),
  );
}

function shortId(id: string): string {
  return `${id.slice(0, 12)}…`;
}

/**
 * A device cut off on purpose (docs/protocol.md cloud rule 1: a revocation is a security decision):
 * its rotation FAILED with OLD_CERTIFICATE_REVOKED and one escalation, the old certificate is left
 * REVOKED, no certificate for its new key survived, nothing attached to its thing is ACTIVE, and
 * neither pair it holds connects.
 */
async function checkCutOff(
  input: FleetCheckInput,
  device: CheckedDevice,
  holdings: Awaited<ReturnType<typeof readHoldings>>,
  fail: (check: CheckName, detail: string, thingName?: string) => void,
): Promise<void> {
  const { registry } = input;
  const { thingName } = device;
  if (device.outcome !== 'failed') fail(CheckName.CutOffOnPurpose, `its rotation ended ${device.outcome}; FAILED expected after the revocation`, thingName);
  const record = await input.currentRecord(thingName);
  if (record?.status !== 'FAILED' || record.reason !== 'OLD_CERTIFICATE_REVOKED') {
    fail(CheckName.CutOffOnPurpose, `the current record is ${record ? `${record.status ?? '?'} ${record.reason ?? '(no reason)'}` : 'missing'}; FAILED OLD_CERTIFICATE_REVOKED expected`, thingName);
  }
  const escalations = input.escalations.get(thingName) ?? 0;
  if (escalations !== 1) fail(CheckName.OneEscalation, `${escalations} escalation(s); exactly one expected`, thingName);
  const old = registry.findCertificate(device.provisioned.certificateId);
  if (old?.status !== 'REVOKED') fail(CheckName.CutOffOnPurpose, `the revoked old certificate is now ${old?.status ?? 'gone'}: Rotor must leave it as the operator set it`, thingName);
  const active = registry.certificatesOf(thingName).filter((c) => c.status === CertificateStatus.Active);
  if (active.length > 0) fail(CheckName.CutOffOnPurpose, `certificate(s) ${active.map((c) => shortId(c.certificateId)).join(', ')} still ACTIVE on the thing: the revocation was laundered`, thingName);
  if (holdings.pendingCertPem && registry.findCertificate(certificateIdOf(holdings.pendingCertPem))) {
    fail(CheckName.CutOffOnPurpose, 'the certificate issued for its new key still exists', thingName);
  }
  for (const pair of [
    { certPem: holdings.currentCertPem, keyPem: holdings.currentKeyPem },
    { certPem: holdings.pendingCertPem, keyPem: holdings.pendingKeyPem },
  ]) {
    if (!pair.certPem || !pair.keyPem) continue;
    const probe = await tryConnect(input.mqtt, thingName, { certPem: pair.certPem, keyPem: pair.keyPem });
    if (probe.ok) fail(CheckName.CutOffOnPurpose, `it still connects with ${shortId(certificateIdOf(pair.certPem))}`, thingName);
  }
}

/** Runs every end check; the devices must be stopped (the probes connect with their client ids). */
export async function checkFleet(input: FleetCheckInput): Promise<CheckFailure[]> {
  const failures: CheckFailure[] = [];
  const now = input.now ?? (() => new Date());
  const fail = (check: CheckName, detail: string, thingName?: string): void => {
    failures.push({ check, ...(thingName ? { thingName } : {}), at: now().toISOString(), detail });
  };
  const heldCertificates = new Set<string>();
  const { registry } = input;

  await forEachLimited(input.devices, input.concurrency ?? 16, async (device) => {
    const { thingName } = device;
    const holdings = await readHoldings(device.stateDir);
    for (const pem of [holdings.currentCertPem, holdings.pendingCertPem]) if (pem) heldCertificates.add(certificateIdOf(pem));

    if (device.outcome === 'unfinished') fail(CheckName.Finished, 'its rotation had not ended by the deadline', thingName);
    if (input.cutOff?.has(thingName)) {
      await checkCutOff(input, device, holdings, fail);
      return;
    }

    // Every device: the current pair is the key of an ACTIVE certificate attached to its thing, and connects.
    const { currentCertPem, currentKeyPem } = holdings;
    if (!currentCertPem || !currentKeyPem) {
      fail(CheckName.HoldsActiveKey, 'its key store has no current pair', thingName);
    } else {
      const currentId = certificateIdOf(currentCertPem);
      const record = registry.findCertificate(currentId);
      const attached = registry.certificatesOf(thingName).some((c) => c.certificateId === currentId);
      if (spkiOfPrivateKey(currentKeyPem) !== spkiOfCertificate(currentCertPem)) {
        fail(CheckName.HoldsActiveKey, `its current key is not the key of its current certificate ${shortId(currentId)}`, thingName);
      } else if (record?.status !== CertificateStatus.Active || !attached) {
        fail(CheckName.HoldsActiveKey, `its current certificate ${shortId(currentId)} is ${record?.status ?? 'not registered'}${attached ? '' : ', not attached to the thing'}`, thingName);
      }
      const connected = await tryConnect(input.mqtt, thingName, { keyPem: currentKeyPem, certPem: currentCertPem });
      if (!connected.ok) fail(CheckName.ConnectsWithCurrent, `connecting with its current certificate ${shortId(currentId)} failed: ${connected.error}`, thingName);

      if (device.outcome === 'rotated' && currentId === device.provisioned.certificateId) {
        fail(CheckName.OldCertificateGone, 'its rotation succeeded but the device still uses the old certificate', thingName);
      }
      if (device.outcome === 'failed' && currentId !== device.provisioned.certificateId) {
        fail(CheckName.FailedKeepsOld, `its rotation failed but the device uses ${shortId(currentId)}, not its old certificate`, thingName);
      }
    }

    const old = registry.findCertificate(device.provisioned.certificateId);
    const escalations = input.escalations.get(thingName) ?? 0;
    if (device.outcome === 'rotated') {
      // Gone: deleted, or with retireMode keep-inactive INACTIVE and attached to nothing.
      const kept = old && (input.retireMode !== 'keep-inactive' || old.status === CertificateStatus.Active || registry.principalThings(old.certificateArn).length > 0);
      if (kept) fail(CheckName.OldCertificateGone, `the old certificate ${shortId(old.certificateId)} is still ${old.status} in the registry`, thingName);
      const probe = await tryConnect(input.mqtt, thingName, device.provisioned);
      if (probe.ok) fail(CheckName.OldCertificateRefused, 'the old certificate still connects', thingName);
      else if (!probe.refused) fail(CheckName.OldCertificateRefused, `the probe with the old certificate failed without a refusal: ${probe.error}`, thingName);
      if (escalations !== 0) fail(CheckName.NoEscalationForSuccess, `${escalations} escalation(s) for a rotation that succeeded`, thingName);
    } else if (device.outcome === 'failed') {
      if (old?.status !== CertificateStatus.Active) fail(CheckName.FailedKeepsOld, `the old certificate is ${old?.status ?? 'gone'}`, thingName);
      const probe = await tryConnect(input.mqtt, thingName, device.provisioned);
      if (!probe.ok) fail(CheckName.FailedKeepsOld, `connecting with the old certificate failed: ${probe.error}`, thingName);
      const record = await input.currentRecord(thingName);
      if (record?.status !== 'FAILED' || !record.reason) {
        fail(CheckName.FailureRecorded, `the current record is ${record ? `status ${record.status ?? '?'} reason ${record.reason ?? '(none)'}` : 'missing'}; FAILED with a reason expected`, thingName);
      }
      if (escalations !== 1) fail(CheckName.OneEscalation, `${escalations} escalation(s); exactly one expected`, thingName);
    }
  });

  // No orphans: every certificate in the registry is some device's current or pending one.
  const retained = input.retireMode === 'keep-inactive';
  for (const certificate of registry.listCertificates(true)) {
    if (heldCertificates.has(certificate.certificateId)) continue;
    // keep-inactive keeps retired certificates on purpose: INACTIVE and attached to no thing.
    if (retained && certificate.status === CertificateStatus.Inactive && registry.principalThings(certificate.certificateArn).length === 0) continue;
    const things = registry.principalThings(certificate.certificateArn);
    fail(CheckName.NoOrphans, `certificate ${shortId(certificate.certificateId)} (${certificate.status}, thing ${things.join(', ') || 'none'}) is held by no device`);
  }
  return failures.sort((a, b) => (a.thingName ?? '').localeCompare(b.thingName ?? '') || a.check.localeCompare(b.check));
}
