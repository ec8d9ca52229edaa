import { SFNClient } from '@aws-sdk/client-sfn';
import { Step } from '../../../domain/index.js';
import type { LocalAws } from '../../../local/runtime.js';
import type { ExecutionDescription } from '../../../local/stepfunctions/service.js';
import { buildTrace, fetchHistory, type Trace } from '../../operator/trace.js';
import { mean, percentile, type DemoReport } from '../figures.js';
import type { DemoDevice } from './provision.js';
import { mapLimited } from './waiting.js';

/** What the runtime counted before the audit started, so the figures cover the rotations alone. */
export interface Baseline {
  calls: Record<string, number>;
  /** Calls the enforced quotas had throttled (setup's own, if any). */
  throttled: Record<string, number>;
  invocations: number;
  eventLoop: ReturnType<typeof performance.eventLoopUtilization>;
}

export function takeBaseline(runtime: LocalAws): Baseline {
  return {
    calls: runtime.edge.calls(),
    throttled: runtime.quotas?.figures().throttledCalls.byApi ?? {},
    invocations: runtime.lambda.invocations().length,
    eventLoop: performance.eventLoopUtilization(),
  };
}

function callDelta(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const delta: Record<string, number> = {};
  for (const [key, value] of Object.entries(after)) {
    const d = value - (before[key] ?? 0);
    if (d > 0) delta[key] = d;
  }
  return delta;
}

/** Counters read the moment the rotations end, before anything else (history reads, checks) calls AWS. */
export interface RuntimeCounters {
  calls: Record<string, number>;
  invocations: ReturnType<LocalAws['lambda']['invocations']>;
  mainThreadBusy: number;
}

export function readCounters(runtime: LocalAws, baseline: Baseline): RuntimeCounters {
  const calls = callDelta(runtime.edge.calls(), baseline.calls);
  // The audit was started by the demo, not by a rotation.
  if (calls['iot:StartOnDemandAuditTask']) calls['iot:StartOnDemandAuditTask']--;
  return {
    calls,
    invocations: runtime.lambda.invocations().slice(baseline.invocations),
    mainThreadBusy: performance.eventLoopUtilization(baseline.eventLoop).utilization,
  };
}

/**
 * Each execution's path, read from GetExecutionHistory over the public API and built into a
 * timeline by the same code as `rotor trace`: what the console would show, not engine internals.
 */
export async function readTraces(runtime: LocalAws, executionArns: readonly string[]): Promise<Map<string, Trace>> {
  const sfn = new SFNClient({ endpoint: runtime.endpoints.awsEndpoint, region: runtime.endpoints.region, credentials: { accessKeyId: 'demo', secretAccessKey: 'demo' } });
  const traces = new Map<string, Trace>();
  try {
    await mapLimited(executionArns, 16, async (arn) => {
      traces.set(arn, buildTrace(arn, await fetchHistory(sfn, arn), true));
    });
  } finally {
    sfn.destroy();
  }
  return traces;
}

export type Outcome = DemoReport['outcomes'][string]['outcome'];

/** A device rotated when its execution succeeded through 'Rotated' ('Already rotating' also succeeds). */
export function outcomeOf(execution: ExecutionDescription | undefined, trace: Trace | undefined): Outcome {
  if (!execution || execution.status === 'RUNNING') return 'unfinished';
  if (execution.status !== 'SUCCEEDED') return 'failed';
  return trace?.entries.some((e) => e.state === Step.Rotated) ? 'rotated' : 'unfinished';
}

export type RotationFigures = Pick<
  DemoReport,
  | 'rotated'
  | 'failed'
  | 'unfinished'
  | 'outcomes'
  | 'p50Ms'
  | 'p95Ms'
  | 'maxMs'
  | 'startDelayP50Ms'
  | 'startDelayP95Ms'
  | 'stepMs'
  | 'stateTransitionsPerRotation'
  | 'stateTransitionsPerSuccessfulRotation'
  | 'apiCallsPerRotation'
  | 'apiCallsByOperation'
  | 'lambda'
  | 'lambdaInvocationsPerRotation'
  | 'mainThreadBusy'
  | 'executions'
>;

/** Phase 4: the figures of the run, from the executions' histories and the runtime's counters. */
export function rotationFigures(input: {
  devices: readonly DemoDevice[];
  executionArns: ReadonlyMap<string, string>;
  executions: ReadonlyMap<string, ExecutionDescription>;
  traces: ReadonlyMap<string, Trace>;
  counters: RuntimeCounters;
  auditStartedAt: number;
}): RotationFigures {
  const { devices, executions, traces, counters } = input;
  const started = devices.flatMap((d) => {
    const execution = executions.get(d.thingName);
    const trace = traces.get(input.executionArns.get(d.thingName) ?? '');
    return execution ? [{ device: d, execution, trace }] : [];
  });
  const rotationCount = Math.max(1, started.length);
  const ended = started.filter((s) => s.execution.status !== 'RUNNING');
  const durations = ended.map((s) => (s.execution.stopDate?.getTime() ?? 0) - s.execution.startDate.getTime());
  const startDelays = started.map((s) => s.execution.startDate.getTime() - input.auditStartedAt);

  const perState = new Map<string, number[]>();
  for (const { trace } of started) {
    for (const entry of trace?.entries ?? []) {
      if (entry.durationMs === undefined) continue;
      const list = perState.get(entry.state) ?? [];
      list.push(entry.durationMs);
      perState.set(entry.state, list);
    }
  }
  const stepMs = Object.fromEntries([...perState].map(([name, list]) => [name, { p50: percentile(list, 50), p95: percentile(list, 95), count: list.length }]));

  const byFunction = new Map<string, { run: number[]; queued: number[] }>();
  for (const log of counters.invocations) {
    const entry = byFunction.get(log.functionName) ?? { run: [], queued: [] };
    entry.run.push(log.durationMs);
    entry.queued.push(log.queuedMs);
    byFunction.set(log.functionName, entry);
  }
  const lambda = Object.fromEntries(
    [...byFunction].map(([name, l]) => [
      name,
      { invocations: l.run.length, p50Ms: percentile(l.run, 50), p95Ms: percentile(l.run, 95), queuedP50Ms: percentile(l.queued, 50), queuedP95Ms: percentile(l.queued, 95) },
    ]),
  );

  const outcomes: DemoReport['outcomes'] = {};
  const failed: Record<string, number> = {};
  let rotated = 0;
  let unfinished = 0;
  const successTransitions: number[] = [];
  for (const d of devices) {
    const execution = executions.get(d.thingName);
    const trace = traces.get(input.executionArns.get(d.thingName) ?? '');
    const outcome = outcomeOf(execution, trace);
    const reason = outcome === 'failed' ? (execution?.error ?? 'UNKNOWN') : undefined;
    const fault = d.cloudFault ?? d.fault?.kind;
    outcomes[d.thingName] = { outcome, ...(reason ? { reason } : {}), ...(fault ? { fault } : {}) };
    if (outcome === 'rotated') {
      rotated++;
      successTransitions.push(trace?.entries.length ?? 0);
    } else if (outcome === 'failed') failed[reason as string] = (failed[reason as string] ?? 0) + 1;
    else unfinished++;
  }

  const totalCalls = Object.values(counters.calls).reduce((a, b) => a + b, 0);
  return {
    rotated,
    failed,
    unfinished,
    outcomes,
    p50Ms: percentile(durations, 50),
    p95Ms: percentile(durations, 95),
    maxMs: durations.length ? Math.max(...durations) : 0,
    startDelayP50Ms: percentile(startDelays, 50),
    startDelayP95Ms: percentile(startDelays, 95),
    stepMs,
    // A state transition is a state entered: what Step Functions bills and the console lists.
    stateTransitionsPerRotation: mean(started.map((s) => s.trace?.entries.length ?? 0)),
    stateTransitionsPerSuccessfulRotation: mean(successTransitions),
    apiCallsPerRotation: totalCalls / rotationCount,
    apiCallsByOperation: Object.fromEntries(Object.entries(counters.calls).map(([op, n]) => [op, n / rotationCount])),
    lambda,
    lambdaInvocationsPerRotation: counters.invocations.length / rotationCount,
    mainThreadBusy: counters.mainThreadBusy,
    // Each execution's start and stop from the audit's start: the report's latency and progress charts.
    executions: started.map(({ execution }) => ({
      startMs: execution.startDate.getTime() - input.auditStartedAt,
      ...(execution.stopDate ? { stopMs: execution.stopDate.getTime() - input.auditStartedAt } : {}),
      status: execution.status,
    })),
  };
}

/**
 * A failure caused by throttling: its execution's error or cause names a throttling error, as the
 * AWS SDKs name them (the failure's cause carries the error that ended the step).
 */
const THROTTLING_CAUSE = /\b(ThrottlingException|TooManyRequestsException|Throttling|RequestLimitExceeded|ProvisionedThroughputExceededException|Rate exceeded)\b/i;

export function failedByThrottling(execution: ExecutionDescription): boolean {
  if (execution.status === 'RUNNING' || execution.status === 'SUCCEEDED') return false;
  return THROTTLING_CAUSE.test(`${execution.error ?? ''} ${execution.cause ?? ''}`);
}

/** The quotas the run enforced, the calls they throttled during the rotations, and the rotations throttling failed. */
export function throttlingFigures(runtime: LocalAws, baseline: Baseline, executions: ReadonlyMap<string, ExecutionDescription>): Pick<DemoReport, 'quotas' | 'throttledCalls' | 'throttlingFailures'> {
  const byApi = callDelta(runtime.quotas?.figures().throttledCalls.byApi ?? {}, baseline.throttled);
  return {
    quotas: runtime.quotas?.quotas.source ?? 'none',
    throttledCalls: { total: Object.values(byApi).reduce((a, b) => a + b, 0), byApi },
    throttlingFailures: [...executions.values()].filter(failedByThrottling).length,
  };
}
