import 'reflect-metadata';
import { ListPrincipalThingsCommand } from '@aws-sdk/client-iot';
import { auditExecutionName } from '../../domain/naming';
import { FailureReason, RotationStatus } from '../../domain/rotation';
import { MessageType } from '../../domain/topics';
import { describeWithBundles as bundlesDescribe } from '../fixtures/bundles.js';
import { useRotationRig, type ExecutionOutcome } from '../fixtures/rotation-rig';
import { identityOf, newPendingKey, tryConnect, type DeviceIdentity, type PendingKey, type ScriptedDevice } from '../fixtures/scripted-device';

/**
 * Issue 9 scenario 6: no crash window. Each case kills one function of the rotation right
 * after its Nth AWS call returned (the local runtime's crash fault: the worker dies before the
 * function sees the answer, and Step Functions sees Sandbox.Timedout), for every function and
 * every N at which that function has done something the next attempt must cope with. After
 * each case the three invariants hold: exactly one ACTIVE certificate for the device, one it
 * holds the key of and can connect with; no certificate of its keys that no record knows; the
 * record agrees with the outcome. Cases run one after the other: a crash rule is global to a
 * function.
 *
 * AWS calls per function on these paths (the numbers below): request-csr park + publish (2);
 * issue-certificate get, describe old, list policies, intent, create, record id (with the old
 * certificate's facts), attach policy, attach thing (8); deliver-certificate park + publish (2);
 * retire-certificate get, list things, deactivate, detach policy, detach thing, delete,
 * crt_done, commit (8: Issue's recorded facts spare it describing and listing policies); roll-back get, describe old, describe new, deactivate, list policies,
 * detach policy, detach thing, delete, abort (9); record-failure commit (1). The paced functions
 * (issue-certificate, retire-certificate, roll-back) first reserve their calls on the pacing item
 * (get, conditional update: docs/fleet-scale.md): two more windows each, at the front.
 */
const AUDIT_TASK = 'crash-audit-task';

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);
type Path = 'rotates' | 'device-error';
type Surface = 'Sandbox.Timedout' | 'Runtime.ExitError' | 'Lambda.Unknown';
const RAW_CASES: [string, number, Path, Surface?][] = [
  ...range(2).map((n): [string, number, Path] => ['request-csr', n, 'rotates']),
  ...range(8 + 2).map((n): [string, number, Path] => ['issue-certificate', n, 'rotates']),
  ...range(2).map((n): [string, number, Path] => ['deliver-certificate', n, 'rotates']),
  ...range(8 + 2).map((n): [string, number, Path] => ['retire-certificate', n, 'rotates']),
  ...range(9 + 2).map((n): [string, number, Path] => ['roll-back', n, 'device-error']),
  ['record-failure', 1, 'device-error'],
  // The other ways a dead Lambda surfaces are retried alike.
  ['issue-certificate', 4 + 2, 'rotates', 'Runtime.ExitError'],
  ['retire-certificate', 5 + 2, 'rotates', 'Lambda.Unknown'],
];
const CASES = RAW_CASES.map(([fn, n, path, surface]): [string, number, Surface, Path] => [fn, n, surface ?? 'Sandbox.Timedout', path]);

const describeWithBundles = bundlesDescribe('test/e2e/crash-windows.test.ts');

describeWithBundles('crash windows: a function killed after its Nth AWS call', () => {
  const rig = useRotationRig({ name: 'crash', executionWaitMs: 45_000 });

  /**
   * A device that follows the protocol and answers every request again (a retried step re-sends
   * csr_req or crt_res with a new task token; the answer to the crashed attempt's token is
   * dropped as a duplicate). On 'device-error' it reports crt_err instead of switching.
   */
  function serve(device: ScriptedDevice, rotationId: string, pending: PendingKey, path: Path): { stop: () => void; fresh: () => DeviceIdentity | undefined } {
    let stopped = false;
    let fresh: DeviceIdentity | undefined;
    let csrAnswered = 0;
    let crtAnswered = 0;
    const loop = async (): Promise<void> => {
      while (!stopped) {
        const requests = device.received(MessageType.CsrRequest).length;
        if (requests > csrAnswered) {
          csrAnswered = requests;
          await device.publish(MessageType.CsrResponse, { rotationId, CSR: pending.csrPem });
        }
        const certificates = device.received(MessageType.CertificateResponse);
        if (certificates.length > crtAnswered) {
          crtAnswered = certificates.length;
          const body = certificates[certificates.length - 1].body as { certificatePem: string };
          if (path === 'device-error') {
            if (crtAnswered === 1) await device.publish(MessageType.CertificateError, { rotationId, error: 'the new pair fails its TLS handshake' });
          } else {
            if (!fresh) {
              fresh = identityOf(pending, body.certificatePem);
              await device.reconnect(fresh);
            }
            await device.publish(MessageType.CertificateAck, { rotationId });
          }
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    const running = loop().catch((error: unknown) => {
      if (!stopped) throw error;
    });
    void running;
    return {
      stop: () => {
        stopped = true;
      },
      fresh: () => fresh,
    };
  }

  it.each(CASES)('%s dies after AWS call %i (%s) → %s, invariants hold', async (fn, afterAwsCalls, surface, path) => {
    // Prepare: a provisioned, connected device, and the crash armed for one invocation.
    const thing = `crash-${fn}-${afterAwsCalls}-${surface.replace('.', '_')}`;
    const first = await newPendingKey(thing);
    const old = await rig.provision(thing, first);
    const device = await rig.connect(thing, old);
    const pending = await newPendingKey(thing);
    rig.aws.edge.faults.crash(fn, afterAwsCalls, 1, surface);

    // Act
    const rotationId = auditExecutionName(thing, old.certificateId, AUDIT_TASK);
    const served = serve(device, rotationId, pending, path);
    const { executionArn } = await rig.start(thing, old.certificateId, { auditTaskId: AUDIT_TASK });
    let execution: ExecutionOutcome;
    try {
      execution = await rig.finished(executionArn);
    } finally {
      served.stop();
    }

    // Assess: the crash happened mid-function, and the step was run again.
    expect(rig.aws.edge.faults.pendingCrashes()).toEqual([]);
    const events = await rig.history(executionArn);
    expect(events.filter((e) => e.type === 'TaskFailed' && e.taskFailedEventDetails?.error === surface)).toHaveLength(1);

    const current = await rig.record(thing);
    expect(current.issueIntent).toBeUndefined();
    expect(current.taskToken).toBeUndefined();
    const keys = [first, pending];
    if (path === 'rotates') {
      const fresh = served.fresh();
      expect(fresh).toBeDefined();
      // error and cause say why, should it fail.
      expect(execution).toEqual({ status: 'SUCCEEDED', error: undefined, cause: undefined });
      expect(current).toMatchObject({ status: RotationStatus.Succeeded, rotationId, newCertificateId: fresh?.certificateId });
      // One certificate for the device's keys: the new one, ACTIVE, the thing's only one.
      expect(await rig.certificatesWithKeys(keys)).toEqual([fresh?.certificateId]);
      expect(await rig.certificateStatus(fresh?.certificateId as string)).toBe('ACTIVE');
      expect(await rig.thingCertificates(thing)).toEqual([fresh?.certificateId]);
      expect(device.received(MessageType.RotationDone).length).toBeGreaterThanOrEqual(1);
      expect(device.received(MessageType.Abort)).toEqual([]);
      expect(rig.escalations(thing)).toEqual([]);
      await device.disconnect();
      expect(await tryConnect(thing, rig.broker, fresh as DeviceIdentity)).toEqual({ connected: true });
    } else {
      expect(execution).toMatchObject({ status: 'FAILED', error: FailureReason.DeviceError });
      expect(current).toMatchObject({ status: RotationStatus.Failed, rotationId, reason: FailureReason.DeviceError });
      // Rolled back: the old certificate alone, ACTIVE; nothing left of the pending key.
      expect(await rig.certificatesWithKeys(keys)).toEqual([old.certificateId]);
      expect(await rig.certificateStatus(old.certificateId)).toBe('ACTIVE');
      expect(await rig.thingCertificates(thing)).toEqual([old.certificateId]);
      expect(rig.escalations(thing)).toHaveLength(1);
      await device.disconnect();
      expect(await tryConnect(thing, rig.broker, old)).toEqual({ connected: true });
    }
    expect(device.malformed).toEqual([]);
  }, 90_000);

  it('leaves no certificate in the registry that no thing uses', async () => {
    const orphans: string[] = [];
    for (const certificate of rig.aws.iot.registry.listCertificates()) {
      const { things } = await rig.iot.send(new ListPrincipalThingsCommand({ principal: certificate.certificateArn }));
      if ((things ?? []).length === 0) orphans.push(certificate.certificateId);
    }
    expect(orphans).toEqual([]);
  });
});
