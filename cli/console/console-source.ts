import {
  DescribeExecutionCommand,
  DescribeStateMachineCommand,
  ExecutionDoesNotExist,
  GetExecutionHistoryCommand,
  ListExecutionsCommand,
  type ExecutionListItem,
  type ExecutionStatus,
  type HistoryEvent,
  type SFNClient,
} from '@aws-sdk/client-sfn';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { RotationStatus } from '../../domain/rotation.js';
import type { ConsoleSource, ExecutionFilter, ExecutionList, ExecutionSummary, ExecutionView, FleetBucket, FleetView, ThingView } from '../../local/console/api.js';
import { executionPath, stateGraph, type ViewEvent } from '../../local/console/execution-view.js';
import { NotFoundError } from '../operator/exit-codes.js';
import { countByStatus, listByStatus, status, type StatusDeps } from '../operator/status.js';
import { buildTrace, readableCause } from '../operator/trace.js';

/**
 * The console's data, read through the runtime's public APIs only — Step Functions'
 * ListExecutions, DescribeExecution, GetExecutionHistory and DescribeStateMachine, and the
 * rotation table through `rotor status`'s own queries — with the same SDK clients an
 * operator's commands use. The same source would serve a console in front of real AWS.
 */
export interface ConsoleSourceDeps {
  sfn: SFNClient;
  ddb: DynamoDBDocumentClient;
  tableName: string;
  stateMachineArn: string;
  /** Fleet-wide figures the runtime has beyond the public APIs' (throttling), when it has any. */
  extras?: () => Promise<Pick<FleetView, 'throttledByOperation' | 'pacingRatePerApi'>>;
}

/** ListExecutions pages read for the fleet's time series: enough for the demo's and the bench's fleets. */
const MAX_LISTED = 20_000;

const iso = (date: Date | undefined): string | undefined => (date ? date.toISOString() : undefined);

function summary(item: ExecutionListItem): ExecutionSummary {
  return { executionArn: item.executionArn ?? '', name: item.name ?? '', status: item.status ?? 'UNKNOWN', startDate: iso(item.startDate), stopDate: iso(item.stopDate) };
}

/** Bucket width: about 40 buckets over the span, rounded to a readable step. */
export function bucketWidthMs(spanMs: number): number {
  const steps = [1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 21_600_000, 86_400_000];
  return steps.find((step) => spanMs / step <= 40) ?? 86_400_000;
}

/** Executions started, succeeded and failed per bucket (failed: every stop that is not a success). */
export function executionSeries(items: readonly ExecutionSummary[], now: number): FleetView['series'] {
  const starts = items.map((i) => Date.parse(i.startDate ?? '')).filter(Number.isFinite);
  if (starts.length === 0) return { bucketMs: 1_000, buckets: [] };
  const first = Math.min(...starts);
  const last = Math.max(now, ...items.map((i) => Date.parse(i.stopDate ?? '')).filter(Number.isFinite));
  const width = bucketWidthMs(last - first);
  const origin = Math.floor(first / width) * width;
  const count = Math.floor((last - origin) / width) + 1;
  const buckets: FleetBucket[] = Array.from({ length: count }, (_, i) => ({ at: new Date(origin + i * width).toISOString(), started: 0, succeeded: 0, failed: 0 }));
  const bucketOf = (t: number): FleetBucket => buckets[Math.min(count - 1, Math.floor((t - origin) / width))];
  for (const item of items) {
    const start = Date.parse(item.startDate ?? '');
    if (Number.isFinite(start)) bucketOf(start).started += 1;
    const stop = Date.parse(item.stopDate ?? '');
    if (!Number.isFinite(stop)) continue;
    if (item.status === 'SUCCEEDED') bucketOf(stop).succeeded += 1;
    else bucketOf(stop).failed += 1;
  }
  return { bucketMs: width, buckets };
}

function tally(values: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}

/** A history event with its dates as ISO strings: what the pages read. */
function viewEvent(event: HistoryEvent): ViewEvent {
  const { timestamp, ...rest } = event;
  return { ...rest, id: event.id ?? 0, type: event.type ?? '', timestamp: iso(timestamp) } as ViewEvent;
}

export class RuntimeConsoleSource implements ConsoleSource {
  private definition: { arn: string; name?: string; definition: string } | undefined;

  constructor(private readonly deps: ConsoleSourceDeps) {}

  private get statusDeps(): StatusDeps {
    return { ddb: this.deps.ddb, tableName: this.deps.tableName, local: true };
  }

  private async listExecutions(statusFilter: string | undefined, stopAt: number, keep: (item: ExecutionSummary) => boolean = () => true): Promise<{ items: ExecutionSummary[]; truncated: boolean }> {
    const items: ExecutionSummary[] = [];
    let nextToken: string | undefined;
    let listed = 0;
    do {
      const page = await this.deps.sfn.send(
        new ListExecutionsCommand({ stateMachineArn: this.deps.stateMachineArn, statusFilter: statusFilter as ExecutionStatus | undefined, maxResults: 1000, nextToken }),
      );
      for (const item of page.executions ?? []) {
        listed += 1;
        const s = summary(item);
        if (keep(s)) items.push(s);
      }
      nextToken = page.nextToken;
    } while (nextToken && items.length < stopAt && listed < MAX_LISTED);
    return { items: items.slice(0, stopAt), truncated: items.length > stopAt || Boolean(nextToken) };
  }

  async fleet(): Promise<FleetView> {
    const [counts, inFlight, failed, listed, extras] = await Promise.all([
      countByStatus(this.statusDeps),
      listByStatus(this.statusDeps, RotationStatus.InProgress),
      listByStatus(this.statusDeps, RotationStatus.Failed),
      this.listExecutions(undefined, MAX_LISTED),
      this.deps.extras?.() ?? Promise.resolve({}),
    ]);
    return {
      generatedAt: new Date().toISOString(),
      counts,
      total: Object.values(counts).reduce((a, b) => a + b, 0),
      series: executionSeries(listed.items, Date.now()),
      executions: { total: listed.items.length, byStatus: tally(listed.items.map((i) => i.status)) },
      inFlightByStep: tally(inFlight.map((r) => r.step)),
      failuresByReason: tally(failed.map((r) => r.reason ?? 'unknown')),
      ...extras,
    };
  }

  async executions(filter: ExecutionFilter): Promise<ExecutionList> {
    const since = filter.since ? Date.parse(filter.since) : -Infinity;
    const until = filter.until ? Date.parse(filter.until) : Infinity;
    const thing = filter.thing?.toLowerCase();
    const { items, truncated } = await this.listExecutions(filter.status, filter.limit, (item) => {
      const start = Date.parse(item.startDate ?? '');
      return (!thing || item.name.toLowerCase().includes(thing)) && start >= since && start <= until;
    });
    return { executions: items, truncated };
  }

  private async stateMachine(arn: string): Promise<{ arn: string; name?: string; definition: string }> {
    if (this.definition?.arn === arn) return this.definition;
    const answer = await this.deps.sfn.send(new DescribeStateMachineCommand({ stateMachineArn: arn }));
    this.definition = { arn, name: answer.name, definition: answer.definition ?? '{}' };
    return this.definition;
  }

  async execution(executionArn: string): Promise<ExecutionView | undefined> {
    let described;
    try {
      described = await this.deps.sfn.send(new DescribeExecutionCommand({ executionArn }));
    } catch (error) {
      if (error instanceof ExecutionDoesNotExist) return undefined;
      throw error;
    }
    const machineArn = described.stateMachineArn ?? this.deps.stateMachineArn;
    const [machine, events] = await Promise.all([this.stateMachine(machineArn), this.history(executionArn)]);
    const graph = stateGraph(machine.definition);
    const viewEvents = events.map(viewEvent);
    const trace = buildTrace(executionArn, events, true);
    const path = executionPath(graph, viewEvents, described.status ?? 'RUNNING');
    // A Lambda error's cause is {errorMessage, errorType, trace}: the message is what a reader wants.
    for (const run of Object.values(path.states)) for (const e of run.errors) e.cause = readableCause(e.cause);
    return {
      execution: {
        executionArn,
        name: described.name ?? '',
        status: described.status ?? 'UNKNOWN',
        startDate: iso(described.startDate),
        stopDate: iso(described.stopDate),
        stateMachineArn: machineArn,
        input: described.input,
        output: described.output,
        error: described.error,
        cause: described.cause,
      },
      stateMachine: { name: machine.name, stateMachineArn: machineArn },
      graph,
      path,
      events: viewEvents,
      failure: trace.failure && { state: trace.failure.state, error: trace.failure.error ?? trace.failure.executionError, cause: trace.failure.cause ?? trace.failure.executionCause },
    };
  }

  private async history(executionArn: string): Promise<HistoryEvent[]> {
    const events: HistoryEvent[] = [];
    let nextToken: string | undefined;
    do {
      const page = await this.deps.sfn.send(new GetExecutionHistoryCommand({ executionArn, nextToken, maxResults: 1000, includeExecutionData: true }));
      events.push(...(page.events ?? []));
      nextToken = page.nextToken;
    } while (nextToken);
    return events.sort((a, b) => (a.id ?? 0) - (b.id ?? 0));
  }

  async thing(thingName: string): Promise<ThingView | undefined> {
    let report;
    try {
      report = await status(this.statusDeps, { thing: thingName, limit: 1 });
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    }
    if (report.kind !== 'thing') return undefined;
    const current = report.current;
    return {
      thing: report.thing,
      current: current && {
        rotationId: current.rotationId,
        status: current.status,
        step: current.step,
        reason: current.reason,
        cause: current.cause,
        startedAt: current.startedAt,
        updatedAt: current.updatedAt,
        attempts: current.attempts,
        executionArn: current.executionArn,
      },
      history: report.history.map((h) => ({
        rotationId: h.rotationId,
        status: h.outcome,
        step: h.step,
        reason: h.reason,
        cause: h.cause,
        trigger: h.trigger,
        startedAt: h.startedAt,
        finishedAt: h.finishedAt,
        executionArn: h.executionArn,
      })),
    };
  }
}
