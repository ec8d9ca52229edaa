import type { CheckFailure } from './fleet-checks.js';
import { formatSignerSummary, type SignerFigures } from './signer.js';
import { formatCaRolloverSummary, type CaRolloverFigures } from './ca-rollover.js';

/** What `rotor demo --report FILE` writes, and what the summary prints (signer fields: cli/demo/signer.ts; absent from older reports). */
export interface DemoReport extends Partial<SignerFigures> {
  devices: number;
  seed: number;
  faults: string;
  timeScale: number;
  rotated: number;
  /** Failure reason (the rotation record's `reason`) → devices. */
  failed: Record<string, number>;
  /** Devices whose rotation had not ended by the deadline (or never started). */
  unfinished: number;
  /** Messages published on the escalation topic. */
  escalations: number;
  /** The quotas the local runtime enforced (`--quotas`): 'aws-default', a quotas file's path, or 'none'. Absent from older reports. */
  quotas?: string;
  /** Calls the enforced quotas throttled during the rotations, in total and per quota bucket (domain/pacing's names). */
  throttledCalls?: { total: number; byApi: Record<string, number> };
  /** Failed rotations whose failure names a throttling error (ThrottlingException, TooManyRequestsException, …). */
  throttlingFailures?: number;
  /** Every breach of cloud rule 7 seen during the run and every failed end check; empty on success. */
  invariantViolations: CheckFailure[];
  /** Cloud-side faults of the run (cli/demo/cloud-faults.ts): devices given each, and Lambda crashes planned and fired. */
  cloudFaults?: { revokeOld: number; cutOffOnPurpose: number; sharedCert: number; lambdaCrashes: number; lambdaCrashesFired: number };
  /** From the audit's start to the end of the last execution. */
  wallMs: number;
  /** Starting the local AWS, provisioning and connecting the fleet. */
  setupMs: number;
  /** Execution start → stop, over every execution that ended. */
  p50Ms: number;
  p95Ms: number;
  maxMs: number;
  /** Audit start → execution start (the audit's fan-out queue), over every execution. */
  startDelayP50Ms: number;
  startDelayP95Ms: number;
  /** Per state name: p50 and p95 of StateEntered → StateExited over every execution that entered it. */
  stepMs: Record<string, { p50: number; p95: number; count: number }>;
  /** Per Lambda function, the invocations during the rotations: how many, how long they ran, how long they waited for a sandbox. */
  lambda: Record<string, { invocations: number; p50Ms: number; p95Ms: number; queuedP50Ms: number; queuedP95Ms: number }>;
  /** Share of the rotation window the main thread was busy (event loop utilization, 0..1): near 1 means it is the bottleneck. */
  mainThreadBusy: number;
  /** StateEntered events per execution (mean), and for the successful ones alone. */
  stateTransitionsPerRotation: number;
  stateTransitionsPerSuccessfulRotation: number;
  /** AWS API calls through the edge during the rotations, per execution (mean). */
  apiCallsPerRotation: number;
  /** The same, per `service:Operation`. */
  apiCallsByOperation: Record<string, number>;
  lambdaInvocationsPerRotation: number;
  invariantSamples: number;
  /** Device checks, and how many a certificate's retirement and a device's removal of a key started. */
  /** diskChecks: the device checks that read a key store from disk (the others used the keys the fleet reported). */
  invariantChecks: { deviceChecks: number; retirementChecks: number; keyRemovalChecks: number; diskChecks: number };
  /**
   * Per execution, in ms from the audit's start: when it started and stopped, and its status —
   * what `rotor report` draws the latency distribution and the progress over time from.
   * Absent from reports written before it existed.
   */
  executions?: { startMs: number; stopMs?: number; status: string }[];
  /** `--scenario ca-rollover`: the rollover's execution and where it ended (cli/demo/ca-rollover.ts). */
  caRollover?: CaRolloverFigures;
  /** Outcome and failure reason per device (for tests and for reading a report). */
  outcomes: Record<string, { outcome: 'rotated' | 'failed' | 'unfinished'; reason?: string; fault?: string }>;
}

/** Nearest-rank percentile (p in 0..100) of unsorted values; 0 for none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

export function mean(values: readonly number[]): number {
  return values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length;
}

function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

function seconds(ms: number): string {
  return ms >= 10_000 ? `${round(ms / 1000, 1)} s` : `${Math.round(ms)} ms`;
}

/** The summary a person reads at a glance: outcome first, then where the time and calls went. */
export function formatSummary(report: DemoReport): string[] {
  const failedTotal = Object.values(report.failed).reduce((a, b) => a + b, 0);
  const lines = [
    '',
    `Rotor demo: ${report.devices} devices${report.faults ? `, faults ${report.faults} (seed ${report.seed})` : ', no faults'}, time scale ${report.timeScale}`,
    `  rotated                ${report.rotated}`,
    `  failed                 ${failedTotal}${failedTotal ? `  (${Object.entries(report.failed).sort(([a], [b]) => a.localeCompare(b)).map(([reason, n]) => `${reason} ${n}`).join(', ')})` : ''}`,
  ];
  if (report.unfinished) lines.push(`  unfinished             ${report.unfinished}`);
  const cloud = report.cloudFaults;
  if (cloud && cloud.revokeOld + cloud.sharedCert + cloud.lambdaCrashes > 0) {
    lines.push(
      `  cloud faults           revoke-old ${cloud.revokeOld} (cut off on purpose ${cloud.cutOffOnPurpose}), shared-cert ${cloud.sharedCert}, Lambda crashes ${cloud.lambdaCrashesFired} of ${cloud.lambdaCrashes} fired`,
    );
  }
  if (report.quotas && report.quotas !== 'none') {
    const throttled = report.throttledCalls ?? { total: 0, byApi: {} };
    const byApi = Object.entries(throttled.byApi).sort(([, a], [, b]) => b - a).map(([api, n]) => `${api} ${n}`).join(', ');
    lines.push(
      `  quotas                 ${report.quotas}`,
      `  throttled calls        ${throttled.total}${byApi ? `  (${byApi})` : ''}; rotations failed by throttling: ${report.throttlingFailures ?? 0}`,
    );
  }
  lines.push(...formatSignerSummary(report));
  lines.push(...formatCaRolloverSummary(report.caRollover));
  lines.push(
    `  escalations sent       ${report.escalations}`,
    `  wall time              ${seconds(report.wallMs)} rotating (+ ${seconds(report.setupMs)} setup)`,
    `  rotation time          p50 ${seconds(report.p50Ms)}, p95 ${seconds(report.p95Ms)}, max ${seconds(report.maxMs)}`,
    `  execution start delay  p50 ${seconds(report.startDelayP50Ms)}, p95 ${seconds(report.startDelayP95Ms)} (audit start → execution start)`,
    `  time per state (p50)   ${Object.entries(report.stepMs).map(([name, t]) => `${name} ${seconds(t.p50)}`).join(', ') || 'none'}`,
    `  main thread busy       ${Math.round(report.mainThreadBusy * 100)} % of the rotation window`,
    `  Lambda (p50 run/queue) ${Object.entries(report.lambda).map(([name, l]) => `${name.replace(/^rotor-/, '')} ${Math.round(l.p50Ms)}/${Math.round(l.queuedP50Ms)} ms`).join(', ') || 'none'}`,
    `  state transitions      ${round(report.stateTransitionsPerRotation)} per rotation (${round(report.stateTransitionsPerSuccessfulRotation)} per successful one)`,
    `  AWS API calls          ${round(report.apiCallsPerRotation)} per rotation, ${round(report.lambdaInvocationsPerRotation)} Lambda invocations`,
  );
  const top = Object.entries(report.apiCallsByOperation).sort(([, a], [, b]) => b - a).slice(0, 6);
  if (top.length) lines.push(`                         ${top.map(([op, n]) => `${op} ${round(n)}`).join(', ')}`);
  if (report.invariantViolations.length === 0) {
    lines.push(`  checks                 all passed (invariant sampled ${report.invariantSamples} times; every device connects with an ACTIVE certificate; no orphans)`);
  } else {
    lines.push(`  checks                 ${report.invariantViolations.length} FAILED:`);
    for (const v of report.invariantViolations.slice(0, 20)) lines.push(`    ${v.check}${v.thingName ? ` ${v.thingName}` : ''}: ${v.detail}`);
    if (report.invariantViolations.length > 20) lines.push(`    … and ${report.invariantViolations.length - 20} more (see --report)`);
  }
  return lines;
}
