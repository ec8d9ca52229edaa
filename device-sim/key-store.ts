import * as nodeFs from 'node:fs/promises';
import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { KeyAlgorithm } from './keys.js';

/** A key and the certificate issued for it, both PEM. */
export interface StoredPair {
  keyPem: string;
  certPem: string;
}

/** What the device remembers about the rotation its pending key belongs to (rotation.json). */
export interface PendingRotation {
  /** '' when a blog-era cloud sent the csr_req without one. */
  rotationId: string;
  startedAt: string;
  keyAlgorithm: KeyAlgorithm;
  /** Base64 DER SPKI of the pending key: a crt_res is accepted only for this key. */
  publicKeySpki: string;
  certificateId?: string;
}

export interface PendingPair {
  rotation: PendingRotation;
  keyPem: string;
  csrPem?: string;
  certPem?: string;
}

export interface KeyStoreSnapshot {
  current?: StoredPair;
  pending?: PendingPair;
  /** What `load` repaired after an interrupted write (for the device log). */
  repaired: string[];
}

/**
 * Where the device keeps its keys. The file implementation below is the reference; an HSM or
 * secure element implements the same interface (the private key then never leaves it, and
 * `keyPem` becomes a handle the transport understands).
 */
export interface KeyStore {
  /** Reads the stored pairs, finishing or undoing whatever an interrupted write left behind. */
  load(): Promise<KeyStoreSnapshot>;
  /** First boot: the provisioned pair becomes current. */
  importCurrent(pair: StoredPair): Promise<void>;
  /** A new pending key for a rotation; replaces any earlier pending pair. Current is untouched. */
  createPending(rotation: PendingRotation, keyPem: string): Promise<void>;
  storePendingCsr(rotationId: string, csrPem: string): Promise<void>;
  storePendingCertificate(rotationId: string, certPem: string, certificateId: string): Promise<void>;
  /** The pending pair becomes current in one atomic step; the old pair is kept until deleteOldKey. */
  promotePending(rotationId: string): Promise<void>;
  /** Deletes the pair that was current before the last promote. */
  deleteOldKey(): Promise<void>;
  /** Discards the pending pair (of that rotation only, when given). */
  dropPending(rotationId?: string): Promise<void>;
}

export class KeyStoreError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KeyStoreError';
  }
}

/** The slice of node:fs/promises the file store uses; tests swap in one that fails mid-way. */
export interface FileOps {
  open: typeof nodeFs.open;
  rename: typeof nodeFs.rename;
  readFile: typeof nodeFs.readFile;
  readlink: typeof nodeFs.readlink;
  symlink: typeof nodeFs.symlink;
  unlink: typeof nodeFs.unlink;
  mkdir: typeof nodeFs.mkdir;
  rm: typeof nodeFs.rm;
  readdir: typeof nodeFs.readdir;
}

const KEY_FILE = 'key.pem';
const CERT_FILE = 'cert.pem';
const CSR_FILE = 'csr.pem';
const ROTATION_FILE = 'rotation.json';
const PAIRS_DIR = 'pairs';
const LINK = { current: 'current', pending: 'pending', previous: 'previous' } as const;
type LinkName = (typeof LINK)[keyof typeof LINK];

function isNotFound(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

function isPendingRotation(value: unknown): value is PendingRotation {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.rotationId === 'string' &&
    typeof v.startedAt === 'string' &&
    typeof v.publicKeySpki === 'string' &&
    (Object.values(KeyAlgorithm) as unknown[]).includes(v.keyAlgorithm) &&
    (v.certificateId === undefined || typeof v.certificateId === 'string')
  );
}

/**
 * Told, after every operation that changed which private keys are on disk, the base64 DER SPKI
 * of each key now in pairs/ (at most two: current and pending; three between a promote and the
 * old key's delete). An observer that must know what the device holds (the demo's watch of
 * PROTOCOL.md cloud rule 7) learns it from here instead of re-reading the store. A key is
 * reported once its write is durable, and a removed one only once it is gone from disk.
 */
export type HeldKeysObserver = (heldSpkis: readonly string[]) => void;

/**
 * Keys on disk under one state directory:
 *
 *     pairs/<id>/{key.pem, cert.pem, csr.pem, rotation.json}
 *     current  -> pairs/<id>      (so current/key.pem, current/cert.pem)
 *     pending  -> pairs/<id>      (pending/key.pem, cert.pem once issued, csr.pem, rotation.json)
 *     previous -> pairs/<id>      (only between promote and deleteOldKey)
 *
 * Every file is written to a temporary name, fsynced and renamed; every switch of a pair is
 * the rename of a fresh symlink over the old one. A rename is atomic on POSIX file systems,
 * so a crash at any point leaves `current` naming a complete pair: the one from before the
 * write, or the one after it. Promote is one rename (current -> the pending pair's
 * directory), which is the atomic swap PROTOCOL.md device rule 3 asks for.
 */
export class FileKeyStore implements KeyStore {
  private readonly fs: FileOps;
  /** pair id → SPKI of its key, for the pairs this store knows are on disk (kept only with an observer). */
  private readonly held = new Map<string, string>();
  private lastReported = '';

  constructor(
    readonly stateDir: string,
    fileOps: Partial<FileOps> = {},
    private readonly onHeldKeys?: HeldKeysObserver,
  ) {
    this.fs = { ...(nodeFs as FileOps), ...fileOps };
  }

  async load(): Promise<KeyStoreSnapshot> {
    await this.fs.mkdir(join(this.stateDir, PAIRS_DIR), { recursive: true, mode: 0o700 });
    const repaired: string[] = [];
    let current = await this.target(LINK.current);
    let pending = await this.target(LINK.pending);
    const previous = await this.target(LINK.previous);

    // Interrupted promote: current already names the pending pair, only the link is left.
    if (pending && pending === current) {
      await this.unlinkIfPresent(LINK.pending);
      pending = undefined;
      repaired.push('finished an interrupted promote');
    }
    // A previous pair exists only between promote and deleteOldKey, and promote happens on
    // crt_done: the cloud has retired that certificate, so finishing the delete is safe.
    if (previous) {
      await this.unlinkIfPresent(LINK.previous);
      if (previous !== current) {
        await this.removePair(previous);
        repaired.push('deleted the old key left by an interrupted crt_done');
      }
    }

    let pendingPair: PendingPair | undefined;
    if (pending) {
      pendingPair = await this.readPending(pending);
      if (!pendingPair) {
        await this.unlinkIfPresent(LINK.pending);
        await this.removePair(pending);
        pending = undefined;
        repaired.push('dropped an unreadable pending pair');
      }
    }

    let currentPair: StoredPair | undefined;
    if (current) {
      const key = await this.readOptional(join(this.pairDir(current), KEY_FILE));
      const cert = await this.readOptional(join(this.pairDir(current), CERT_FILE));
      if (key && cert) currentPair = { keyPem: key, certPem: cert };
      else {
        repaired.push(`current pair ${current} is incomplete`);
        current = undefined;
      }
    }

    // Directories nothing points at are leftovers of a write that never reached its rename.
    const referenced = new Set([current, pending].filter((x): x is string => Boolean(x)));
    for (const entry of await this.fs.readdir(join(this.stateDir, PAIRS_DIR))) {
      if (!referenced.has(entry)) {
        await this.removePair(entry);
        repaired.push(`removed the unfinished pair ${entry}`);
      }
    }
    if (this.onHeldKeys) {
      // What is on disk now: the pairs the links name (every other pair directory was just removed).
      const now = new Map<string, string>();
      for (const [id, keyPem] of [
        [current, currentPair?.keyPem],
        [pending, pendingPair?.keyPem],
      ] as const) {
        if (!id) continue;
        const spki = this.held.get(id) ?? spkiOfKey(keyPem);
        if (spki) now.set(id, spki);
      }
      this.held.clear();
      for (const [id, spki] of now) this.held.set(id, spki);
      this.report();
    }
    return { current: currentPair, pending: pendingPair, repaired };
  }

  async importCurrent(pair: StoredPair): Promise<void> {
    const id = await this.newPairDir();
    await this.writeAtomic(join(this.pairDir(id), KEY_FILE), pair.keyPem, 0o600);
    this.keyWritten(id, () => spkiOfKey(pair.keyPem));
    await this.writeAtomic(join(this.pairDir(id), CERT_FILE), pair.certPem, 0o644);
    const old = await this.target(LINK.current);
    await this.pointLink(LINK.current, id);
    if (old && old !== id) await this.removePair(old);
    this.report();
  }

  async createPending(rotation: PendingRotation, keyPem: string): Promise<void> {
    const id = await this.newPairDir();
    await this.writeAtomic(join(this.pairDir(id), KEY_FILE), keyPem, 0o600);
    // The record's SPKI is the caller's word for the key; the observer is told the key's own.
    this.keyWritten(id, () => spkiOfKey(keyPem));
    await this.writeAtomic(join(this.pairDir(id), ROTATION_FILE), JSON.stringify(rotation, null, 2), 0o644);
    const old = await this.target(LINK.pending);
    await this.pointLink(LINK.pending, id);
    if (old && old !== id) await this.removePair(old);
    this.report();
  }

  async storePendingCsr(rotationId: string, csrPem: string): Promise<void> {
    const id = await this.pendingOf(rotationId);
    await this.writeAtomic(join(this.pairDir(id), CSR_FILE), csrPem, 0o644);
  }

  async storePendingCertificate(rotationId: string, certPem: string, certificateId: string): Promise<void> {
    const id = await this.pendingOf(rotationId);
    const pending = await this.readPending(id);
    if (!pending) throw new KeyStoreError(`pending pair ${id} is unreadable`);
    // The certificate first, then the record that says it is there: a crash in between
    // leaves a record without certificateId, which reads as "not issued yet".
    await this.writeAtomic(join(this.pairDir(id), CERT_FILE), certPem, 0o644);
    const rotation: PendingRotation = { ...pending.rotation, certificateId };
    await this.writeAtomic(join(this.pairDir(id), ROTATION_FILE), JSON.stringify(rotation, null, 2), 0o644);
  }

  async promotePending(rotationId: string): Promise<void> {
    const pendingId = await this.pendingOf(rotationId);
    const pending = await this.readPending(pendingId);
    if (!pending?.certPem) throw new KeyStoreError(`pending pair of rotation ${rotationId || '(no id)'} has no certificate yet`);
    const current = await this.target(LINK.current);
    if (current) await this.pointLink(LINK.previous, current);
    await this.pointLink(LINK.current, pendingId); // the commit point
    await this.unlinkIfPresent(LINK.pending);
  }

  async deleteOldKey(): Promise<void> {
    const previous = await this.target(LINK.previous);
    if (!previous) return;
    await this.unlinkIfPresent(LINK.previous);
    if (previous !== (await this.target(LINK.current))) await this.removePair(previous);
    this.report();
  }

  async dropPending(rotationId?: string): Promise<void> {
    const pending = await this.target(LINK.pending);
    if (!pending) return;
    if (rotationId !== undefined) {
      const pair = await this.readPending(pending);
      if (pair && pair.rotation.rotationId !== rotationId) return;
    }
    await this.unlinkIfPresent(LINK.pending);
    if (pending !== (await this.target(LINK.current))) await this.removePair(pending);
    this.report();
  }

  // --- internals ---

  private pairDir(id: string): string {
    return join(this.stateDir, PAIRS_DIR, id);
  }

  private async newPairDir(): Promise<string> {
    await this.fs.mkdir(join(this.stateDir, PAIRS_DIR), { recursive: true, mode: 0o700 });
    const id = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
    await this.fs.mkdir(this.pairDir(id), { mode: 0o700 });
    return id;
  }

  private async pendingOf(rotationId: string): Promise<string> {
    const id = await this.target(LINK.pending);
    if (!id) throw new KeyStoreError(`no pending pair for rotation ${rotationId || '(no id)'}`);
    const pair = await this.readPending(id);
    if (!pair || pair.rotation.rotationId !== rotationId) {
      throw new KeyStoreError(`the pending pair belongs to rotation ${pair?.rotation.rotationId ?? '(unreadable)'}, not ${rotationId || '(no id)'}`);
    }
    return id;
  }

  private async readPending(id: string): Promise<PendingPair | undefined> {
    const dir = this.pairDir(id);
    const rotationText = await this.readOptional(join(dir, ROTATION_FILE));
    const keyPem = await this.readOptional(join(dir, KEY_FILE));
    if (!rotationText || !keyPem) return undefined;
    let rotation: unknown;
    try {
      rotation = JSON.parse(rotationText);
    } catch {
      return undefined;
    }
    if (!isPendingRotation(rotation)) return undefined;
    const csrPem = await this.readOptional(join(dir, CSR_FILE));
    // A certificate counts only once rotation.json records it (see storePendingCertificate).
    const certPem = rotation.certificateId ? await this.readOptional(join(dir, CERT_FILE)) : undefined;
    return { rotation, keyPem, ...(csrPem ? { csrPem } : {}), ...(certPem ? { certPem } : {}) };
  }

  private async readOptional(path: string): Promise<string | undefined> {
    try {
      return await this.fs.readFile(path, 'utf8');
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /** The pair directory a link names, or undefined. */
  private async target(link: LinkName): Promise<string | undefined> {
    try {
      const value = await this.fs.readlink(join(this.stateDir, link));
      const prefix = `${PAIRS_DIR}/`;
      return value.startsWith(prefix) ? value.slice(prefix.length) : undefined;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  private async pointLink(link: LinkName, id: string): Promise<void> {
    const tmp = join(this.stateDir, `.${link}.${randomBytes(4).toString('hex')}.tmp`);
    await this.fs.symlink(`${PAIRS_DIR}/${id}`, tmp);
    try {
      await this.fs.rename(tmp, join(this.stateDir, link));
    } catch (error) {
      await this.fs.unlink(tmp).catch(() => undefined);
      throw new KeyStoreError(`could not switch ${link} to ${id}`, { cause: error });
    }
    await this.syncDir(this.stateDir);
  }

  private async unlinkIfPresent(link: LinkName): Promise<void> {
    try {
      await this.fs.unlink(join(this.stateDir, link));
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    await this.syncDir(this.stateDir);
  }

  private async removePair(id: string): Promise<void> {
    await this.fs.rm(this.pairDir(id), { recursive: true, force: true });
    this.held.delete(id);
  }

  /** A key file is durable under pairs/<id>: from now on the device holds it. */
  private keyWritten(id: string, spki: () => string | undefined): void {
    if (!this.onHeldKeys) return;
    const value = spki();
    if (value) this.held.set(id, value);
    // Told at once: the device may act on the new key (send its CSR) before the operation ends.
    this.report();
  }

  /** Tells the observer what is held now, when that changed since it was last told. */
  private report(): void {
    if (!this.onHeldKeys) return;
    const spkis = [...new Set(this.held.values())].sort();
    const key = spkis.join(',');
    if (key === this.lastReported) return;
    this.lastReported = key;
    this.onHeldKeys(spkis);
  }

  private async writeAtomic(path: string, content: string, mode: number): Promise<void> {
    const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
    const handle = await this.fs.open(tmp, 'wx', mode);
    try {
      await handle.writeFile(content, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await this.fs.rename(tmp, path);
    } catch (error) {
      await this.fs.rm(tmp, { force: true }).catch(() => undefined);
      throw new KeyStoreError(`could not write ${path}`, { cause: error });
    }
    await this.syncDir(join(path, '..'));
  }

  /** fsync of the directory makes the rename itself durable, not only the file's bytes. */
  private async syncDir(dir: string): Promise<void> {
    const handle = await this.fs.open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
}

/** Base64 DER SPKI of a PEM private key; undefined when it is not one (such a key is of no use to the device either). */
function spkiOfKey(keyPem: string | undefined): string | undefined {
  if (!keyPem) return undefined;
  try {
    return createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' }).toString('base64');
  } catch {
    return undefined;
  }
}

/** Reads the files an operator provisioned, with one clear error per unreadable file. */
export async function readProvisionedPair(keyFile: string, certFile: string): Promise<StoredPair> {
  const read = async (path: string, what: string): Promise<string> => {
    try {
      return await nodeFs.readFile(path, 'utf8');
    } catch (error) {
      throw new KeyStoreError(`cannot read the ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
  };
  return { keyPem: await read(keyFile, 'private key'), certPem: await read(certFile, 'certificate') };
}
