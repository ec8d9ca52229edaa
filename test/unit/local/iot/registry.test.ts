import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCa } from '../../../../local/iot/ca.js';
import { IotRegistry } from '../../../../local/iot/registry.js';

describe('IotRegistry', () => {
  let ca: LocalCa;
  let dir: string;

  beforeAll(async () => {
    ca = await LocalCa.create();
  });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-iot-'));
  });

  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps the registry in its data directory and reloads it', async () => {
    const first = new IotRegistry({ ca, dataDir: dir });
    const device = await first.provisionDevice({ thingName: 'dev-1', policyName: 'p', expiresInDays: 20, createdDaysAgo: 3 });
    const second = new IotRegistry({ ca, dataDir: dir });
    expect(second.describeCertificate(device.certificateId)).toEqual(first.describeCertificate(device.certificateId));
    expect(second.certificatesOf('dev-1').map((c) => c.certificateId)).toEqual([device.certificateId]);
    expect(second.connectRefusal(device.certificateId, 'dev-1')).toBeUndefined();
  });

  it('gives a provisioned certificate the asked-for creation date and expiry', async () => {
    const now = new Date('2030-01-01T00:00:00Z');
    const registry = new IotRegistry({ ca, now: () => now });
    const device = await registry.provisionDevice({ thingName: 'dev-2', policyName: 'p', expiresInDays: 10, createdDaysAgo: 400 });
    const record = registry.describeCertificate(device.certificateId);
    expect(record.creationDate).toBe('2028-11-27T00:00:00.000Z');
    expect(record.notAfter).toBe('2030-01-11T00:00:00.000Z');
    expect(ca.issued(device.certificatePem)).toBe(true);
  });

  it('tells the broker why a connection is refused', async () => {
    const registry = new IotRegistry({ ca });
    const device = await registry.provisionDevice({ thingName: 'dev-3', policyName: 'p' });
    expect(registry.connectRefusal(device.certificateId, 'dev-4')).toMatch(/no thing named dev-4/);
    registry.detachPolicy('p', device.certificateArn);
    expect(registry.connectRefusal(device.certificateId, 'dev-3')).toMatch(/no policy attached/);
    registry.attachPolicy('p', device.certificateArn);
    registry.updateCertificate(device.certificateId, 'INACTIVE');
    expect(registry.connectRefusal(device.certificateId, 'dev-3')).toMatch(/INACTIVE/);
    expect(registry.connectRefusal('0'.repeat(64), 'dev-3')).toMatch(/not registered/);
  });

  it('notifies retirement when a certificate leaves ACTIVE or is deleted, not on other changes', async () => {
    const registry = new IotRegistry({ ca });
    const retired: string[] = [];
    registry.onRetired((id, reason) => retired.push(`${reason}:${id}`));
    const device = await registry.provisionDevice({ thingName: 'dev-5', policyName: 'p' });
    registry.updateCertificate(device.certificateId, 'INACTIVE');
    registry.updateCertificate(device.certificateId, 'INACTIVE');
    registry.detachThingPrincipal('dev-5', device.certificateArn);
    registry.deleteCertificate(device.certificateId, true);
    expect(retired).toEqual([`status:${device.certificateId}`, `deleted:${device.certificateId}`]);
  });

  it('refuses principals that are not certificate ARNs instead of ignoring them', async () => {
    const registry = new IotRegistry({ ca });
    registry.createThing('dev-6');
    expect(() => registry.attachThingPrincipal('dev-6', 'arn:aws:cognito-identity:us-east-1:1:identitypool/x')).toThrow(/not a certificate ARN/);
    expect(() => registry.attachThingPrincipal('dev-6', registry.certificateArn('a'.repeat(64)))).toThrow(/does not exist/);
  });

  it('answers attachments from both ends, in attach order, after detaches and a reload', async () => {
    const registry = new IotRegistry({ ca, dataDir: dir });
    const a = await registry.provisionDevice({ thingName: 'dev-7', policyName: 'p' });
    const b = await registry.provisionDevice({ thingName: 'dev-8', policyName: 'p' });
    registry.createPolicy('q', registry.getPolicy('p').policyDocument);
    registry.attachPolicy('q', a.certificateArn);
    registry.attachPolicy('q', a.certificateArn);
    registry.attachThingPrincipal('dev-8', a.certificateArn);
    expect(registry.attachedPolicies(a.certificateArn)).toEqual(['p', 'q']);
    expect(registry.principalThings(a.certificateArn)).toEqual(['dev-7', 'dev-8']);
    expect(registry.targetsForPolicy('p')).toEqual([a.certificateArn, b.certificateArn]);
    expect(registry.thingPrincipals('dev-8')).toEqual([b.certificateArn, a.certificateArn]);
    registry.detachPolicy('p', a.certificateArn);
    registry.detachThingPrincipal('dev-7', a.certificateArn);
    for (const view of [registry, new IotRegistry({ ca, dataDir: dir })]) {
      expect(view.attachedPolicies(a.certificateArn)).toEqual(['q']);
      expect(view.principalThings(a.certificateArn)).toEqual(['dev-8']);
      expect(view.targetsForPolicy('p')).toEqual([b.certificateArn]);
      expect(view.thingPrincipals('dev-7')).toEqual([]);
      expect(view.connectRefusal(a.certificateId, 'dev-7')).toMatch(/not attached to thing dev-7/);
      expect(view.connectRefusal(a.certificateId, 'dev-8')).toBeUndefined();
    }
    registry.detachThingPrincipal('dev-8', a.certificateArn);
    registry.detachThingPrincipal('dev-8', b.certificateArn);
    registry.deleteThing('dev-8');
    expect(registry.principalThings(b.certificateArn)).toEqual([]);
  });
});
