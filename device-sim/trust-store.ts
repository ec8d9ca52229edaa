import * as nodeFs from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Protocol v1.2: where the device keeps its server trust bundles — the current one and, during
 * an update, a pending one beside it (rule T2). Each is one JSON file, so making the pending
 * bundle current is a single rename (rule T3: a power cut leaves one complete bundle).
 * With no current file, the device uses the bundle it was provisioned with (the endpoint's CA).
 */
export interface StoredBundle {
  rotationId: string;
  bundleId: string;
  pem: string;
}

export interface TrustSnapshot {
  current?: StoredBundle;
  pending?: StoredBundle;
}

export interface TrustStore {
  load(): Promise<TrustSnapshot>;
  /** Writes the pending bundle; the current one is untouched. */
  storePending(bundle: StoredBundle): Promise<void>;
  /** The pending bundle of that update becomes current in one atomic step; the old one is gone. */
  promotePending(rotationId: string): Promise<void>;
  /** Discards the pending bundle (of that update only). */
  dropPending(rotationId: string): Promise<void>;
}

const DIR = 'trust';
const CURRENT = 'current.json';
const PENDING = 'pending.json';

export class FileTrustStore implements TrustStore {
  constructor(
    readonly stateDir: string,
    private readonly fs: Pick<typeof nodeFs, 'mkdir' | 'readFile' | 'writeFile' | 'rename' | 'rm'> = nodeFs,
  ) {}

  private path(name: string): string {
    return join(this.stateDir, DIR, name);
  }

  private async read(name: string): Promise<StoredBundle | undefined> {
    let text: string;
    try {
      text = await this.fs.readFile(this.path(name), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    const parsed = JSON.parse(text) as Partial<StoredBundle>;
    if (typeof parsed.bundleId !== 'string' || typeof parsed.pem !== 'string' || typeof parsed.rotationId !== 'string') {
      throw new Error(`${this.path(name)} is not a stored trust bundle`);
    }
    return { rotationId: parsed.rotationId, bundleId: parsed.bundleId, pem: parsed.pem };
  }

  async load(): Promise<TrustSnapshot> {
    const [current, pending] = await Promise.all([this.read(CURRENT), this.read(PENDING)]);
    return { ...(current ? { current } : {}), ...(pending ? { pending } : {}) };
  }

  async storePending(bundle: StoredBundle): Promise<void> {
    await this.fs.mkdir(join(this.stateDir, DIR), { recursive: true, mode: 0o700 });
    const tmp = this.path(`${PENDING}.tmp`);
    await this.fs.writeFile(tmp, JSON.stringify(bundle), { mode: 0o644, flush: true });
    await this.fs.rename(tmp, this.path(PENDING));
  }

  async promotePending(rotationId: string): Promise<void> {
    const pending = await this.read(PENDING);
    if (!pending || pending.rotationId !== rotationId) throw new Error(`no pending trust bundle of update ${rotationId}`);
    await this.fs.rename(this.path(PENDING), this.path(CURRENT));
  }

  async dropPending(rotationId: string): Promise<void> {
    const pending = await this.read(PENDING).catch(() => undefined);
    if (pending && pending.rotationId !== rotationId) return;
    await this.fs.rm(this.path(PENDING), { force: true });
  }
}
