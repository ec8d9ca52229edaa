import type { LocalAws } from '../../../local/runtime.js';
import type { ExecutionDescription } from '../../../local/stepfunctions/service.js';
import type { DemoIo } from '../run-demo.js';
import { progressDisplay, type ProgressCounts } from '../progress.js';

const POLL_MS = 100;

export interface AwaitedExecutions {
  /** thing name → its execution as last seen (absent: never started). */
  executions: Map<string, ExecutionDescription>;
  /** Audit start → the end of the last execution (or now, if some never ended). */
  wallMs: number;
  /** True when every execution started and ended before the deadline. */
  complete: boolean;
}

/**
 * Phase 3: wait for every device's execution to start and end, with a live progress bar, until
 * the deadline or Ctrl-C. The runtime tells when each execution ends, rather than being asked a
 * thousand times a second.
 */
export async function awaitExecutions(
  runtime: LocalAws,
  input: { executionArns: ReadonlyMap<string, string>; auditStartedAt: number; deadline: number; signal?: AbortSignal },
  io: DemoIo,
): Promise<AwaitedExecutions> {
  const executions = new Map<string, ExecutionDescription>();
  const progress = progressDisplay({ tty: io.tty, stream: io.progressStream, out: io.out });
  const counts = (): ProgressCounts => {
    const c: ProgressCounts = { total: input.executionArns.size, notStarted: 0, inFlight: 0, rotated: 0, failed: 0 };
    for (const thingName of input.executionArns.keys()) {
      const execution = executions.get(thingName);
      if (!execution) c.notStarted++;
      else if (execution.status === 'RUNNING') c.inFlight++;
      else if (execution.status === 'SUCCEEDED') c.rotated++;
      else c.failed++;
    }
    return c;
  };
  try {
    for (;;) {
      for (const [thingName, arn] of input.executionArns) {
        // Not started yet (the audit notification is still being worked through), or started and awaited below.
        if (executions.has(thingName)) continue;
        const found = runtime.stepFunctions.findExecution(arn);
        if (!found) continue;
        executions.set(thingName, found);
        if (found.status === 'RUNNING') {
          void runtime.stepFunctions.waitForExecution(arn).then(
            (ended) => void executions.set(thingName, ended),
            () => undefined,
          );
        }
      }
      const c = counts();
      progress.update(c);
      if (c.notStarted === 0 && c.inFlight === 0) break;
      if (Date.now() > input.deadline || input.signal?.aborted) break;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  } finally {
    progress.stop();
  }
  const ended = [...executions.values()].filter((e) => e.status !== 'RUNNING');
  const complete = ended.length === input.executionArns.size;
  const lastStop = Math.max(input.auditStartedAt, ...ended.map((e) => e.stopDate?.getTime() ?? 0));
  return { executions, wallMs: (complete ? lastStop : Date.now()) - input.auditStartedAt, complete };
}
