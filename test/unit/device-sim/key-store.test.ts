import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import * as nodeFs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkCsr } from '../../../domain/csr-rules.js';
import { FileKeyStore, type PendingRotation } from '../../../device-sim/key-store.js';
import { createCsrPem, generatePrivateKeyPem, publicKeySpkiOfPrivateKey, type KeyAlgorithm } from '../../../device-sim/keys.js';
import { createCa, issueCertificate, newEcKeyPem, type TestCa } from './pki.js';

const THING = 'sensor-0042';
let ca: TestCa;
let dir: string;

beforeAll(async () => {
  ca = await createCa();
});
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rotor-keystore-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function provisioned(store: FileKeyStore): Promise<{ keyPem: string; certPem: string }> {
  const keyPem = newEcKeyPem();
  const pair = { keyPem, certPem: await issueCertificate(ca, keyPem, THING) };
  await store.importCurrent(pair);
  return pair;
}

function rotation(keyPem: string, rotationId = 'r1'): PendingRotation {
  return { rotationId, startedAt: '2025-06-01T00:00:00.000Z', keyAlgorithm: 'ec-p256', publicKeySpki: publicKeySpkiOfPrivateKey(keyPem) };
}

describe('FileKeyStore', () => {
  it('keeps current untouched while a pending pair is made, then promotes it and deletes the old key', async () => {
    const store = new FileKeyStore(dir);
    const old = await provisioned(store);
    const newKey = newEcKeyPem();
    await store.createPending(rotation(newKey), newKey);
    await store.storePendingCsr('r1', 'CSR');
    const newCert = await issueCertificate(ca, newKey, THING);
    await store.storePendingCertificate('r1', newCert, 'b'.repeat(64));

    let snap = await store.load();
    expect(snap.current).toEqual(old);
    expect(snap.pending).toMatchObject({ keyPem: newKey, certPem: newCert, csrPem: 'CSR', rotation: { certificateId: 'b'.repeat(64) } });
    // The documented layout is readable through the links.
    expect(await readFile(join(dir, 'current', 'key.pem'), 'utf8')).toBe(old.keyPem);
    expect(await readFile(join(dir, 'pending', 'cert.pem'), 'utf8')).toBe(newCert);

    await store.promotePending('r1');
    snap = await store.load();
    expect(snap.current).toEqual({ keyPem: newKey, certPem: newCert });
    expect(snap.pending).toBeUndefined();
    await store.deleteOldKey();
    const pairs = await readdir(join(dir, 'pairs'));
    expect(pairs).toHaveLength(1);
    const all = await Promise.all(pairs.map((p) => readFile(join(dir, 'pairs', p, 'key.pem'), 'utf8')));
    expect(all).not.toContain(old.keyPem);
  });

  it('refuses to promote a pending pair without a certificate, or of another rotation', async () => {
    const store = new FileKeyStore(dir);
    await provisioned(store);
    const key = newEcKeyPem();
    await store.createPending(rotation(key), key);
    await expect(store.promotePending('r1')).rejects.toThrow('has no certificate yet');
    await expect(store.storePendingCertificate('r2', 'x', 'y')).rejects.toThrow('belongs to rotation r1');
  });

  it('drops only the pending pair of the rotation named', async () => {
    const store = new FileKeyStore(dir);
    const old = await provisioned(store);
    const key = newEcKeyPem();
    await store.createPending(rotation(key), key);
    await store.dropPending('another');
    expect((await store.load()).pending).toBeDefined();
    await store.dropPending('r1');
    const snap = await store.load();
    expect(snap.pending).toBeUndefined();
    expect(snap.current).toEqual(old);
  });

  it('a crash at any rename during promote leaves a usable current pair and loses neither key', async () => {
    // Fail the Nth rename, for every N the promote performs, on a fresh store each time.
    for (let failAt = 1; failAt <= 3; failAt++) {
      const stateDir = await mkdtemp(join(dir, `crash-${failAt}-`));
      const setup = new FileKeyStore(stateDir);
      const old = await provisioned(setup);
      const newKey = newEcKeyPem();
      const newCert = await issueCertificate(ca, newKey, THING);
      await setup.createPending(rotation(newKey), newKey);
      await setup.storePendingCertificate('r1', newCert, 'c'.repeat(64));

      let renames = 0;
      const crashing = new FileKeyStore(stateDir, {
        rename: async (from, to) => {
          renames++;
          if (renames === failAt) throw Object.assign(new Error('simulated power loss'), { code: 'EIO' });
          return nodeFs.rename(from, to);
        },
      });
      const outcome = await crashing.promotePending('r1').then(() => 'promoted', () => 'crashed');

      const snap = await new FileKeyStore(stateDir).load();
      expect(snap.current).toBeDefined();
      const held = [snap.current?.keyPem, snap.pending?.keyPem];
      if (outcome === 'crashed') {
        // Before the commit point: still the old pair, with the new one pending.
        expect(snap.current).toEqual(old);
        expect(held).toContain(newKey);
      } else {
        expect(snap.current).toEqual({ keyPem: newKey, certPem: newCert });
      }
    }
  });

  it('a crash while writing the certificate leaves the pending pair as "not issued yet" and current intact', async () => {
    const store = new FileKeyStore(dir);
    const old = await provisioned(store);
    const key = newEcKeyPem();
    await store.createPending(rotation(key), key);
    let renames = 0;
    const crashing = new FileKeyStore(dir, {
      rename: async (from, to) => {
        // The certificate's rename succeeds, the rotation.json update does not.
        if (++renames === 2) throw new Error('simulated crash');
        return nodeFs.rename(from, to);
      },
    });
    await expect(crashing.storePendingCertificate('r1', await issueCertificate(ca, key, THING), 'd'.repeat(64))).rejects.toThrow();
    const snap = await store.load();
    expect(snap.current).toEqual(old);
    expect(snap.pending?.certPem).toBeUndefined();
    expect(snap.pending?.keyPem).toBe(key);
    expect((await readdir(join(dir, 'pairs', (await nodeFs.readlink(join(dir, 'pending'))).split('/')[1]))).some((f) => f.endsWith('.tmp'))).toBe(false);
  });

  it('finishes an interrupted crt_done on load: current is the new pair, the old key is gone', async () => {
    const store = new FileKeyStore(dir);
    const old = await provisioned(store);
    const key = newEcKeyPem();
    const cert = await issueCertificate(ca, key, THING);
    await store.createPending(rotation(key), key);
    await store.storePendingCertificate('r1', cert, 'e'.repeat(64));
    await store.promotePending('r1'); // "crash" before deleteOldKey
    const snap = await new FileKeyStore(dir).load();
    expect(snap.current).toEqual({ keyPem: key, certPem: cert });
    expect(snap.repaired.join()).toContain('deleted the old key');
    const keys = await Promise.all((await readdir(join(dir, 'pairs'))).map((p) => readFile(join(dir, 'pairs', p, 'key.pem'), 'utf8')));
    expect(keys).not.toContain(old.keyPem);
  });
});

describe('CSRs made on the device', () => {
  const cases: Array<[KeyAlgorithm, 'ec' | 'rsa', string]> = [
    ['ec-p256', 'ec', 'prime256v1'],
    ['ec-p384', 'ec', 'secp384r1'],
    ['rsa-2048', 'rsa', '2048'],
  ];
  it.each(cases)('%s: CN is the thing name, the key type is right, and the cloud accepts it', async (algorithm, keyType, keyDetail) => {
    const keyPem = await generatePrivateKeyPem(algorithm);
    const csr = await createCsrPem(keyPem, THING);
    const check = checkCsr(csr, { thingName: THING });
    expect(check).toEqual({ ok: true, facts: { commonName: THING, keyType, keyDetail, publicKeySpki: publicKeySpkiOfPrivateKey(keyPem) } });
  });

  it('an RSA-1024 key (the weak-key fault) is refused by the cloud rules', async () => {
    const csr = await createCsrPem(await generatePrivateKeyPem('rsa-1024'), THING);
    expect(checkCsr(csr, { thingName: THING })).toMatchObject({ ok: false, reason: 'WEAK_KEY' });
  });

  it('a thing name with DN metacharacters stays one CN', async () => {
    const csr = await createCsrPem(newEcKeyPem(), 'a,CN=b');
    expect(checkCsr(csr, { thingName: 'a,CN=b' })).toMatchObject({ ok: true });
  });
});

describe('FileKeyStore: the held-keys observer (what the demo watches instead of reading the store)', () => {
  /** The SPKIs of every key.pem under pairs/, read from disk: what the observer must agree with. */
  async function onDisk(): Promise<string[]> {
    const pairs = await readdir(join(dir, 'pairs'));
    const keys = await Promise.all(pairs.map((p) => readFile(join(dir, 'pairs', p, 'key.pem'), 'utf8').catch(() => undefined)));
    return [...new Set(keys.filter((k): k is string => k !== undefined).map(publicKeySpkiOfPrivateKey))].sort();
  }

  it('reports the keys on disk after every change, and only after a change', async () => {
    const reports: string[][] = [];
    const store = new FileKeyStore(dir, {}, (spkis) => reports.push([...spkis]));
    const old = await provisioned(store);
    const oldSpki = publicKeySpkiOfPrivateKey(old.keyPem);
    expect(reports).toEqual([[oldSpki]]);
    expect(await onDisk()).toEqual([oldSpki]);

    const key = newEcKeyPem();
    const newSpki = publicKeySpkiOfPrivateKey(key);
    await store.createPending(rotation(key), key);
    expect(reports.at(-1)).toEqual([newSpki, oldSpki].sort());
    expect(await onDisk()).toEqual(reports.at(-1));
    await store.storePendingCertificate('r1', await issueCertificate(ca, key, THING), 'c'.repeat(64));
    // A promote moves links, not keys: nothing to report.
    await store.promotePending('r1');
    expect(reports).toHaveLength(2);

    await store.deleteOldKey();
    expect(reports.at(-1)).toEqual([newSpki]);
    expect(await onDisk()).toEqual([newSpki]);
  });

  it('reports a dropped pending key as gone, and what a repairing load leaves', async () => {
    const reports: string[][] = [];
    const store = new FileKeyStore(dir, {}, (spkis) => reports.push([...spkis]));
    const old = await provisioned(store);
    const key = newEcKeyPem();
    await store.createPending(rotation(key), key);
    await store.dropPending('r1');
    expect(reports.at(-1)).toEqual([publicKeySpkiOfPrivateKey(old.keyPem)]);
    expect(await onDisk()).toEqual(reports.at(-1));

    // A pending pair another process left behind (the device restarted): the first load reports it.
    const other = newEcKeyPem();
    await new FileKeyStore(dir).createPending(rotation(other, 'r2'), other);
    const reborn: string[][] = [];
    await new FileKeyStore(dir, {}, (spkis) => reborn.push([...spkis])).load();
    expect(reborn).toEqual([await onDisk()]);
    expect(reborn[0]).toContain(publicKeySpkiOfPrivateKey(other));
  });
});
