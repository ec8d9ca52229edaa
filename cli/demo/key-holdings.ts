import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { readdir, readFile, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * What a simulated device holds on disk, read WITHOUT the key store's `load()`: `load()`
 * repairs interrupted writes, and an observer must never write into a device's state while
 * the device is running. The layout is device-sim/key-store.ts's: pairs/<id>/{key,cert}.pem
 * with `current`, `pending` and `previous` symlinks into pairs/.
 */
export interface DeviceHoldings {
  /** Base64 DER SPKI of every private key present in pairs/ (a key being deleted may be missing). */
  keySpkis: Set<string>;
  /** The certificate of the `current` link, when it has one. */
  currentCertPem?: string;
  currentKeyPem?: string;
  /** The certificate of the `pending` link, when one was issued, and its key. */
  pendingCertPem?: string;
  pendingKeyPem?: string;
}

const PAIRS_DIR = 'pairs';

/** Parsing a PEM key costs more than a map lookup; a sampler reads the same keys many times. */
const spkiByKeyPem = new Map<string, string>();
const MAX_CACHED = 100_000;

export function spkiOfPrivateKey(keyPem: string): string {
  let spki = spkiByKeyPem.get(keyPem);
  if (spki === undefined) {
    spki = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' }).toString('base64');
    if (spkiByKeyPem.size >= MAX_CACHED) spkiByKeyPem.clear();
    spkiByKeyPem.set(keyPem, spki);
  }
  return spki;
}

const spkiByCertPem = new Map<string, string>();

export function spkiOfCertificate(certPem: string): string {
  let spki = spkiByCertPem.get(certPem);
  if (spki === undefined) {
    spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
    if (spkiByCertPem.size >= MAX_CACHED) spkiByCertPem.clear();
    spkiByCertPem.set(certPem, spki);
  }
  return spki;
}

function isNotFound(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

async function readIfPresent(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

async function linkTarget(stateDir: string, link: string): Promise<string | undefined> {
  try {
    return join(stateDir, await readlink(join(stateDir, link)));
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

/** What a key file looked like when its SPKI was taken: a file with the same identity has the same key. */
interface KeyFileMemo {
  ino: number;
  size: number;
  mtimeMs: number;
  spki: string;
}

/**
 * The SPKIs of the private keys a device holds on disk right now, for a watcher that asks
 * again and again. A key file is read and parsed once; later passes `stat` it and reuse the
 * SPKI while its inode, size and mtime are unchanged (the key store writes every file to a
 * new name and renames it, so any change is a new inode). One stat per pair instead of open,
 * fstat, read and close: a 1,000-device fleet is sampled several times a second this way.
 * The directory is still listed and every key still stat'ed on each pass, so a key that is
 * gone is never reported as held.
 */
export class HeldKeyReader {
  /** state dir → pair id → memo; replaced on each read, so pairs that are gone are forgotten. */
  private readonly memo = new Map<string, Map<string, KeyFileMemo>>();

  async read(stateDir: string): Promise<Set<string>> {
    let pairIds: string[] = [];
    try {
      pairIds = await readdir(join(stateDir, PAIRS_DIR));
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    const before = this.memo.get(stateDir);
    const after = new Map<string, KeyFileMemo>();
    const keySpkis = new Set<string>();
    for (const id of pairIds) {
      const path = join(stateDir, PAIRS_DIR, id, 'key.pem');
      let info;
      try {
        info = await stat(path);
      } catch (error) {
        if (isNotFound(error)) continue;
        throw error;
      }
      const known = before?.get(id);
      if (known && known.ino === info.ino && known.size === info.size && known.mtimeMs === info.mtimeMs) {
        keySpkis.add(known.spki);
        after.set(id, known);
        continue;
      }
      const keyPem = await readIfPresent(path);
      if (keyPem === undefined) continue;
      try {
        const spki = spkiOfPrivateKey(keyPem);
        keySpkis.add(spki);
        after.set(id, { ino: info.ino, size: info.size, mtimeMs: info.mtimeMs, spki });
      } catch {
        // A key the device could not use either (never happens with atomic writes); not held.
      }
    }
    this.memo.set(stateDir, after);
    return keySpkis;
  }
}

/**
 * One reading of a device's state directory. The pair directories are listed first: a pair
 * is created before its link and deleted after it, so listing pairs/ never misses a key that
 * the device held during the whole read (reading the links one after another could see
 * `current` before a promote and `pending` after it, and miss the new key).
 */
export async function readHoldings(stateDir: string): Promise<DeviceHoldings> {
  let pairIds: string[] = [];
  try {
    pairIds = await readdir(join(stateDir, PAIRS_DIR));
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
  const keySpkis = new Set<string>();
  for (const id of pairIds) {
    const keyPem = await readIfPresent(join(stateDir, PAIRS_DIR, id, 'key.pem'));
    if (keyPem === undefined) continue;
    try {
      keySpkis.add(spkiOfPrivateKey(keyPem));
    } catch {
      // A key the device could not use either (never happens with atomic writes); not held.
    }
  }
  const holdings: DeviceHoldings = { keySpkis };
  const current = await linkTarget(stateDir, 'current');
  if (current) {
    holdings.currentCertPem = await readIfPresent(join(current, 'cert.pem'));
    holdings.currentKeyPem = await readIfPresent(join(current, 'key.pem'));
  }
  const pending = await linkTarget(stateDir, 'pending');
  if (pending) {
    holdings.pendingCertPem = await readIfPresent(join(pending, 'cert.pem'));
    holdings.pendingKeyPem = await readIfPresent(join(pending, 'key.pem'));
  }
  return holdings;
}
