import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/**
 * The demo's fleet and the local AWS share one process, so every device costs two open files
 * for its whole life: its own TLS socket and the broker's end of it. At 10,000 devices that is
 * 20,000 descriptors before the edge's sockets, DynamoDB Local's and the key store writes; the
 * common limit of 20,000 fails the boot with EMFILE after tens of minutes of provisioning. This
 * says so before anything starts, after raising the soft limit where the process may.
 */
export const FILES_PER_DEVICE = 2;
/** The runtime's own: the edge and its Lambda workers' keep-alive sockets, DynamoDB Local's, the JVM pipe, the key store writes in flight. */
export const FILES_FOR_THE_RUNTIME = 1_024;

/** Open files this process needs; with the fleet in child processes only the broker's end of each connection is here. */
export function openFilesNeeded(devices: number, fleetInChildProcesses = false): number {
  return devices * (fleetInChildProcesses ? 1 : FILES_PER_DEVICE) + FILES_FOR_THE_RUNTIME;
}

export interface OpenFileLimit {
  soft: number;
  hard: number;
}

/** The process's RLIMIT_NOFILE as Linux reports it; undefined elsewhere (nothing is checked there). */
export function readOpenFileLimit(limitsText?: string): OpenFileLimit | undefined {
  let text = limitsText;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/limits', 'utf8');
    } catch {
      return undefined;
    }
  }
  const match = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
  if (!match) return undefined;
  const value = (field: string): number => (field === 'unlimited' ? Number.POSITIVE_INFINITY : Number(field));
  const soft = value(match[1]);
  const hard = value(match[2]);
  return Number.isNaN(soft) || Number.isNaN(hard) ? undefined : { soft, hard };
}

/**
 * Node cannot set its own rlimits; util-linux's prlimit can, for this process: up to the hard
 * limit as anyone, beyond it as root. Returns the limit afterwards.
 */
function raiseSoftLimit(wanted: number, limit: OpenFileLimit): OpenFileLimit {
  const target = Math.max(wanted, limit.soft);
  try {
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${target}:${Math.max(target, limit.hard)}`], { stdio: 'ignore', timeout: 5_000 });
  } catch {
    // Not allowed, or no prlimit: the check below says what to do.
  }
  return readOpenFileLimit() ?? limit;
}

/**
 * Ensures the process may hold the fleet's connections: the error message when it may not
 * (and could not raise its limit), undefined when it may or when the limit is unknown.
 */
export function ensureOpenFiles(devices: number, fleetInChildProcesses = false): string | undefined {
  const needed = openFilesNeeded(devices, fleetInChildProcesses);
  let limit = readOpenFileLimit();
  if (!limit || limit.soft >= needed) return undefined;
  limit = raiseSoftLimit(needed, limit);
  if (limit.soft >= needed) return undefined;
  return (
    `${devices} devices need about ${needed} open files in this process (${fleetInChildProcesses ? "1 per device: the broker's end of its TLS socket" : `${FILES_PER_DEVICE} per device: its TLS socket and the broker's end of it`}, ` +
    `plus ${FILES_FOR_THE_RUNTIME} for the local AWS); the limit is ${limit.soft}. Raise it (ulimit -n ${needed}, as root if the hard limit is ${limit.hard}), ` +
    `${fleetInChildProcesses ? '' : 'run the devices in child processes (npm run bench -- --fleet-process), '}or run fewer devices`
  );
}
