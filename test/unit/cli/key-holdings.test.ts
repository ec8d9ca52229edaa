import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileKeyStore } from '../../../device-sim/key-store';
import { DEFAULT_KEY_ALGORITHM, generatePrivateKeyPem, publicKeySpkiOfPrivateKey } from '../../../device-sim/keys';
import { HeldKeyReader } from '../../../cli/demo/key-holdings';

/**
 * The watcher's key reader remembers each key file's SPKI by the file's identity, so a fleet
 * is sampled with one stat per key; it must still see every key that appears, changes or goes.
 */
describe('HeldKeyReader', () => {
  let dir: string;
  const rotation = (publicKeySpki: string) => ({ rotationId: 'r-1', startedAt: '2026-01-01T00:00:00Z', keyAlgorithm: DEFAULT_KEY_ALGORITHM, publicKeySpki });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-held-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('sees keys as the store adds and removes them, across repeated reads', async () => {
    // Prepare
    const store = new FileKeyStore(dir);
    const current = await generatePrivateKeyPem(DEFAULT_KEY_ALGORITHM);
    const pending = await generatePrivateKeyPem(DEFAULT_KEY_ALGORITHM);
    const reader = new HeldKeyReader();
    // Act / Assess
    expect(await reader.read(dir)).toEqual(new Set());
    await store.importCurrent({ keyPem: current, certPem: 'not needed here' });
    expect(await reader.read(dir)).toEqual(new Set([publicKeySpkiOfPrivateKey(current)]));
    expect(await reader.read(dir)).toEqual(new Set([publicKeySpkiOfPrivateKey(current)]));
    await store.createPending(rotation(publicKeySpkiOfPrivateKey(pending)), pending);
    expect(await reader.read(dir)).toEqual(new Set([publicKeySpkiOfPrivateKey(current), publicKeySpkiOfPrivateKey(pending)]));
    await store.dropPending('r-1');
    expect(await reader.read(dir)).toEqual(new Set([publicKeySpkiOfPrivateKey(current)]));
  });

  it('reads a key file again when it was replaced, and drops one that was deleted', async () => {
    // Prepare
    const store = new FileKeyStore(dir);
    const first = await generatePrivateKeyPem(DEFAULT_KEY_ALGORITHM);
    const second = await generatePrivateKeyPem(DEFAULT_KEY_ALGORITHM);
    await store.importCurrent({ keyPem: first, certPem: 'not needed here' });
    const reader = new HeldKeyReader();
    expect(await reader.read(dir)).toEqual(new Set([publicKeySpkiOfPrivateKey(first)]));
    const [pairId] = readdirSync(join(dir, 'pairs'));
    const keyFile = join(dir, 'pairs', pairId, 'key.pem');
    // Act: what the memo must not hide — the same path with other contents, then no file at all.
    writeFileSync(keyFile, second);
    const afterReplace = await reader.read(dir);
    rmSync(keyFile);
    const afterDelete = await reader.read(dir);
    // Assess
    expect(afterReplace).toEqual(new Set([publicKeySpkiOfPrivateKey(second)]));
    expect(afterDelete).toEqual(new Set());
  });
});
