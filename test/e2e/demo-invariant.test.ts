import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileKeyStore } from '../../device-sim/key-store';
import { createCsrPem, DEFAULT_KEY_ALGORITHM, generatePrivateKeyPem, publicKeySpkiOfPrivateKey } from '../../device-sim/keys';
import { IotRegistry, LocalCa } from '../../local/iot/index';
import { checkDeviceInvariant, InvariantWatcher } from '../../cli/demo/invariant-watch';

/**
 * The demo's watch of PROTOCOL.md cloud rule 7 against a real registry and a real key store:
 * it passes while the device holds the key of an ACTIVE attached certificate, and reports
 * the breach the moment that certificate is deactivated (the registry's retirement event),
 * without waiting for the next sample.
 */
describe('the invariant watcher', () => {
  let dir: string;
  let registry: IotRegistry;
  let certificateId: string;
  const thingName = 'watched-1';

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-watch-'));
    registry = new IotRegistry({ ca: await LocalCa.create('watch test CA') });
    const keyPem = await generatePrivateKeyPem(DEFAULT_KEY_ALGORITHM);
    const device = await registry.provisionDevice({ thingName, policyName: 'device', csrPem: await createCsrPem(keyPem, thingName), expiresInDays: 5 });
    certificateId = device.certificateId;
    await new FileKeyStore(join(dir, thingName)).importCurrent({ keyPem, certPem: device.certificatePem });
  });

  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('finds no breach while the device holds the key of its ACTIVE certificate', async () => {
    await expect(checkDeviceInvariant(registry, { thingName, stateDir: join(dir, thingName) })).resolves.toBeUndefined();
  });

  it('reports a breach when the only certificate the device holds a key for is deactivated', async () => {
    const watcher = new InvariantWatcher({ registry, devices: [{ thingName, stateDir: join(dir, thingName) }], intervalMs: 60_000 });
    watcher.start();
    try {
      // The first sample runs on start; let it finish so the breach below is the retirement event's to find.
      await new Promise((resolve) => setTimeout(resolve, 0));
      await watcher.idle();
      expect(watcher.stats.samples).toBe(1);
      expect(watcher.violations).toEqual([]);
      registry.updateCertificate(certificateId, 'INACTIVE');
      await watcher.idle();
    } finally {
      await watcher.stop();
    }
    expect(watcher.violations).toEqual([expect.objectContaining({ thingName, trigger: 'certificate-retired', detail: expect.stringMatching(/none of an ACTIVE certificate/) })]);
    expect(watcher.stats.retirementChecks).toBe(1);
  });

  it('reports a breach when the device holds no key of an attached certificate', async () => {
    const other = await generatePrivateKeyPem(DEFAULT_KEY_ALGORITHM);
    await new FileKeyStore(join(dir, 'stranger')).importCurrent({ keyPem: other, certPem: registry.describeCertificate(certificateId).certificatePem });
    await expect(checkDeviceInvariant(registry, { thingName, stateDir: join(dir, 'stranger') })).resolves.toMatch(/holds 1 private key/);
  });
});

/**
 * With the fleet reporting what each key store holds (device-sim/key-store.ts HeldKeysObserver),
 * the watcher checks against the reports and reads no store, except for its `final` pass, which
 * reads every store from disk whatever was reported.
 */
describe('the invariant watcher on the keys the fleet reports', () => {
  let dir: string;
  let registry: IotRegistry;
  let certificateId: string;
  let keyPem: string;
  const thingName = 'watched-2';

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-watch-'));
    registry = new IotRegistry({ ca: await LocalCa.create('watch test CA') });
    keyPem = await generatePrivateKeyPem(DEFAULT_KEY_ALGORITHM);
    const device = await registry.provisionDevice({ thingName, policyName: 'device', csrPem: await createCsrPem(keyPem, thingName), expiresInDays: 5 });
    certificateId = device.certificateId;
  });

  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('uses the reported keys: no disk read while they hold a usable key, a breach when the report removes it', async () => {
    const watcher = new InvariantWatcher({ registry, devices: [{ thingName, stateDir: join(dir, thingName) }], intervalMs: 60_000 });
    await new FileKeyStore(join(dir, thingName), {}, (spkis) => watcher.heldKeys(thingName, spkis)).importCurrent({
      keyPem,
      certPem: registry.describeCertificate(certificateId).certificatePem,
    });
    watcher.start();
    try {
      await new Promise((resolve) => setTimeout(resolve, 0));
      await watcher.idle();
      expect(watcher.violations).toEqual([]);
      expect(watcher.stats).toMatchObject({ samples: 1, deviceChecks: 1, diskChecks: 0 });

      // The store says the key is gone (the disk still has it): the key-removal check believes the report.
      watcher.heldKeys(thingName, []);
      watcher.keysRemoved(thingName);
      await watcher.idle();
    } finally {
      await watcher.stop();
    }
    expect(watcher.violations).toEqual([expect.objectContaining({ thingName, trigger: 'key-removed', detail: expect.stringMatching(/holds 0 private key/) })]);
    expect(watcher.stats.diskChecks).toBe(0);
  });

  it('the final pass reads the store from disk, whatever was reported', async () => {
    const watcher = new InvariantWatcher({ registry, devices: [{ thingName, stateDir: join(dir, thingName) }], intervalMs: 60_000 });
    // Reported as held, never written: only a disk read can tell.
    watcher.heldKeys(thingName, [publicKeySpkiOfPrivateKey(keyPem)]);
    await watcher.sample('sample');
    expect(watcher.violations).toEqual([]);
    await watcher.sample('final');
    expect(watcher.violations).toEqual([expect.objectContaining({ thingName, trigger: 'final', detail: expect.stringMatching(/holds 0 private key/) })]);
    expect(watcher.stats.diskChecks).toBe(1);
  });
});

describe('the invariant watcher knows when the fleet has settled', () => {
  it('is settled once no reported key store holds more than one key', async () => {
    const registry = new IotRegistry({ ca: await LocalCa.create('settle test CA') });
    const watcher = new InvariantWatcher({ registry, devices: [{ thingName: 'a', stateDir: '/nonexistent/a' }, { thingName: 'b', stateDir: '/nonexistent/b' }] });

    watcher.heldKeys('a', ['k1']);
    expect(watcher.settled()).toBe(true);
    watcher.heldKeys('b', ['k2', 'k3']);
    expect(watcher.settled()).toBe(false);
    watcher.heldKeys('b', ['k3']);
    expect(watcher.settled()).toBe(true);
  });
});
