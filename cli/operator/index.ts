import { Command, CommanderError, Option } from 'commander';
import type { RotationStatus } from '../../domain/rotation.js';
import type { BackoffOptions } from './bounded.js';
import { formatListing, formatPlanned, formatReplay, listDeadLetters, replayDeadLetters, validateDlqOptions, type DlqClients } from './dlq.js';
import { describeError, ExitCode, UsageError } from './exit-codes.js';
import { DESCRIBE_WARNING, expiring, ExpiringSource, formatExpiring, type ExpiringOptions } from './expiring.js';
import { PROGRESS_THRESHOLD, terminalIo, type OperatorIo } from './operator-io.js';
import { executeRetries, formatPlan, formatRetrySummary, planRetries, summarize, validateRetryOptions } from './retry.js';
import { formatStatus, parsePositiveInt, parseStatus, requireThingName, status } from './status.js';
import type { ThrottledCalls } from './fleet.js';
import { connect, deadLetterClients, DEFAULT_NAME_PREFIX, type Target, type TargetOptions } from './target.js';
import { formatTrace, trace, validateTraceOptions } from './trace.js';
import { servedConsole } from '../console/index.js';

/**
 * The operator commands: status, retry, trace, expiring, dlq. Each is a core function (clients and
 * options in, data out) plus a printer; this file only parses flags, connects, and turns the
 * outcome into output and an exit code (docs/operations.md).
 */
export interface OperatorDeps {
  io: OperatorIo;
  connect: (options: TargetOptions) => Promise<Target>;
  now: () => Date;
  /** Where the exit code goes; by default process.exitCode, which main() returns. */
  setExitCode: (code: ExitCode) => void;
  backoff?: Partial<BackoffOptions>;
  /** SQS and Lambda clients for `rotor dlq`, next to the target's. */
  deadLetterClients: (target: Target, profile?: string) => DlqClients;
}

export function defaultOperatorDeps(): OperatorDeps {
  return {
    io: terminalIo(),
    connect,
    deadLetterClients,
    now: () => new Date(),
    setExitCode: (code) => {
      process.exitCode = code;
    },
  };
}

export interface CommonFlags extends TargetOptions {
  json?: boolean;
}

export function addTargetOptions(command: Command): Command {
  return command
    .option('--region <region>', 'AWS region (default: AWS_REGION)')
    .option('--profile <profile>', 'AWS shared-config profile')
    .option('--table <name>', 'rotation table (default: <name-prefix>-rotations)')
    .option('--state-machine-arn <arn>', 'rotate-device state machine (default: found by name <name-prefix>-rotate-device)')
    .option('--name-prefix <prefix>', 'prefix of Rotor\'s resource names', DEFAULT_NAME_PREFIX)
    .option('--local', 'use the local runtime (its endpoints file) instead of AWS')
    .option('--data-dir <dir>', 'data directory of the local runtime (default: .rotor/local)');
}

function targetOptions(flags: CommonFlags): TargetOptions {
  const { region, profile, table, stateMachineArn, namePrefix, local, dataDir } = flags;
  return { region, profile, table, stateMachineArn, namePrefix, local, dataDir };
}

const CONCURRENCY_MAX = 32;

/**
 * Runs one command body: usage is validated before anything connects, every error becomes one
 * line on stderr and an exit code, and the clients are always released so the process exits.
 */
export async function run(
  deps: OperatorDeps,
  flags: CommonFlags,
  body: (target: Target) => Promise<ExitCode>,
): Promise<void> {
  let target: Target | undefined;
  try {
    target = await deps.connect(targetOptions(flags));
    deps.setExitCode(await body(target));
  } catch (error) {
    const { message, exitCode } = describeError(error, { tableName: target?.tableName, region: target?.region, endpoint: target?.endpoint });
    deps.io.err(`rotor: ${message}`);
    deps.setExitCode(exitCode);
  } finally {
    target?.destroy();
  }
}

export function usage(deps: OperatorDeps, error: unknown): void {
  const { message, exitCode } = describeError(error);
  deps.io.err(`rotor: ${message}`);
  deps.setExitCode(exitCode);
}

/** Links to the local console where the local runtime serves one (the Step Functions console's place on AWS). */
async function localConsole(target: Target): Promise<string | undefined> {
  return target.kind === 'local' && target.endpoint ? servedConsole(target.endpoint) : undefined;
}

/** The local edge's throttle counts (GET /_rotor/quotas); on AWS they are a CloudWatch metric, not read here. */
async function localThrottledCalls(target: Target): Promise<ThrottledCalls | undefined> {
  if (target.kind !== 'local' || !target.endpoint) return undefined;
  try {
    const response = await fetch(`${target.endpoint}/_rotor/quotas`, { signal: AbortSignal.timeout(2_000) });
    if (!response.ok) return undefined;
    const body = (await response.json()) as { throttledCalls?: ThrottledCalls };
    return typeof body.throttledCalls?.total === 'number' ? { total: body.throttledCalls.total, byApi: body.throttledCalls.byApi ?? {} } : undefined;
  } catch {
    return undefined;
  }
}

export function print(deps: OperatorDeps, json: boolean | undefined, data: unknown, lines: () => string[]): void {
  if (json) deps.io.out(JSON.stringify(data, null, 2));
  else for (const line of lines()) deps.io.out(line);
}

export function registerOperatorCommands(program: Command, overrides: Partial<OperatorDeps> = {}): Command {
  const deps: OperatorDeps = { ...defaultOperatorDeps(), ...overrides };

  addTargetOptions(
    program
      .command('status')
      .description('where the fleet stands: rotations per status, or one thing\'s whole history')
      .option('--thing <name>', 'one thing: its current rotation and its history')
      .option('--status <status>', 'list only IN_PROGRESS, SUCCEEDED or FAILED')
      .option('--limit <n>', 'rows to list (counts always cover everything)', '50')
      .option('--json', 'print JSON'),
  ).action(async (flags: CommonFlags & { thing?: string; status?: string; limit: string }) => {
    let options: { thing?: string; status?: RotationStatus; limit: number };
    try {
      if (flags.thing !== undefined && flags.status !== undefined) throw new UsageError('use either --thing or --status, not both');
      options = { thing: flags.thing === undefined ? undefined : requireThingName(flags.thing), status: flags.status === undefined ? undefined : parseStatus(flags.status), limit: parsePositiveInt('--limit', flags.limit) };
    } catch (error) {
      return usage(deps, error);
    }
    await run(deps, flags, async (target) => {
      const report = await status({ ddb: target.clients.ddb, tableName: target.tableName, local: target.kind === 'local', consoleBase: await localConsole(target), now: deps.now, throttledCalls: () => localThrottledCalls(target) }, options);
      print(deps, flags.json, report, () => formatStatus(report));
      return ExitCode.Ok;
    });
  });

  addTargetOptions(
    program
      .command('retry')
      .description('start a fresh rotation for FAILED devices (never for one IN_PROGRESS)')
      .option('--thing <name>', 'retry this thing')
      .option('--all-failed', 'retry every device whose last rotation FAILED')
      .option('--dry-run', 'list what would be started and start nothing')
      .option('--yes', 'do not ask for confirmation')
      .option('--concurrency <n>', 'StartExecution calls in flight', '4')
      .option('--json', 'print JSON'),
  ).action(async (flags: CommonFlags & { thing?: string; allFailed?: boolean; dryRun?: boolean; yes?: boolean; concurrency: string }) => {
    let options: ReturnType<typeof validateRetryOptions>;
    let concurrency: number;
    try {
      options = validateRetryOptions(flags);
      concurrency = parsePositiveInt('--concurrency', flags.concurrency, CONCURRENCY_MAX);
    } catch (error) {
      return usage(deps, error);
    }
    await run(deps, flags, async (target) => {
      const retryDeps = { ddb: target.clients.ddb, sfn: target.clients.sfn, tableName: target.tableName };
      const plan = await planRetries(retryDeps, options);
      if (flags.dryRun) {
        const summary = summarize(plan, [], true);
        print(deps, flags.json, summary, () => formatRetrySummary(summary));
        return ExitCode.Ok;
      }
      if (plan.toStart.length > 1 && !flags.yes) {
        if (!deps.io.interactive) {
          throw new UsageError(`this would start ${plan.toStart.length} executions: re-run with --yes to confirm (or --dry-run to see the list)`);
        }
        for (const line of formatPlan(plan)) deps.io.out(line);
        if (!(await deps.io.confirm(`Start ${plan.toStart.length} rotate-device executions?`))) {
          deps.io.err('rotor: nothing started');
          return ExitCode.Ok;
        }
      }
      const stateMachineArn = plan.toStart.length > 0 ? await target.stateMachineArn() : '';
      const bar = deps.io.progress('retry', plan.toStart.length >= PROGRESS_THRESHOLD && !flags.json ? plan.toStart.length : 0);
      const results = await executeRetries(retryDeps, stateMachineArn, plan, { concurrency, backoff: deps.backoff, onProgress: () => bar.tick() }).finally(() => bar.stop());
      const summary = summarize(plan, results, false);
      print(deps, flags.json, summary, () => formatRetrySummary(summary));
      return summary.failed > 0 ? ExitCode.Failure : ExitCode.Ok;
    });
  });

  addTargetOptions(
    program
      .command('trace')
      .description('the path of an execution: states, durations, retries, the error where it failed')
      .option('--thing <name>', 'the latest execution of this thing')
      .option('--execution <arn>', 'this execution')
      .option('--json', 'print JSON'),
  ).action(async (flags: CommonFlags & { thing?: string; execution?: string }) => {
    let options: { thing?: string; execution?: string };
    try {
      options = validateTraceOptions({ thing: flags.thing, execution: flags.execution });
    } catch (error) {
      return usage(deps, error);
    }
    await run(deps, flags, async (target) => {
      const result = await trace(
        { ddb: target.clients.ddb, sfn: target.clients.sfn, tableName: target.tableName, local: target.kind === 'local', consoleBase: await localConsole(target) },
        options,
      );
      print(deps, flags.json, result, () => formatTrace(result));
      return ExitCode.Ok;
    });
  });

  addTargetOptions(
    program
      .command('expiring')
      .description('certificates due for rotation within N days (from the latest audit\'s findings and Rotor\'s records), with their thing and rotation')
      .addOption(new Option('--days <n>', 'horizon in days').default('30'))
      .option('--audit-task <id>', 'from this audit task\'s findings instead of the latest completed one')
      .option('--lookback-days <n>', 'how far back to look for the latest completed audit', '30')
      .option('--describe', 'list every ACTIVE certificate and describe each (exact, but one DescribeCertificate per certificate)')
      .option('--concurrency <n>', 'with --describe: DescribeCertificate calls in flight', '8')
      .option('--json', 'print JSON'),
  ).action(async (flags: CommonFlags & { days: string; concurrency: string; auditTask?: string; lookbackDays: string; describe?: boolean }) => {
    let options: ExpiringOptions;
    try {
      options = {
        days: parsePositiveInt('--days', flags.days, 3650),
        concurrency: parsePositiveInt('--concurrency', flags.concurrency, CONCURRENCY_MAX),
        lookbackDays: parsePositiveInt('--lookback-days', flags.lookbackDays, 90),
        source: flags.describe ? ExpiringSource.Describe : ExpiringSource.AuditFindings,
        auditTaskId: flags.auditTask,
      };
      if (flags.describe && flags.auditTask !== undefined) throw new UsageError('use either --describe or --audit-task ID, not both');
      if (flags.auditTask !== undefined && !/^[a-zA-Z0-9-]{1,40}$/.test(flags.auditTask)) throw new UsageError(`--audit-task ${JSON.stringify(flags.auditTask)} is not an audit task id`);
    } catch (error) {
      return usage(deps, error);
    }
    if (flags.describe) deps.io.err(DESCRIBE_WARNING);
    await run(deps, flags, async (target) => {
      let bar: ReturnType<OperatorIo['progress']> | undefined;
      const report = await expiring(
        {
          iot: target.clients.iot,
          ddb: target.clients.ddb,
          tableName: target.tableName,
          now: deps.now,
          backoff: deps.backoff,
          onProgress: (_done, total) => {
            bar ??= deps.io.progress('describe', flags.json ? 0 : total);
            bar.tick();
          },
        },
        options,
      ).finally(() => bar?.stop());
      print(deps, flags.json, report, () => formatExpiring(report));
      return ExitCode.Ok;
    });
  });

  registerDlqCommands(program, deps);
  return program;
}

function registerDlqCommands(program: Command, deps: OperatorDeps): void {
  const dlq = program.command('dlq').description('events Lambda gave up on (device messages, audit notifications): list them, replay them');
  type DlqFlags = CommonFlags & { function?: string; messageId?: string; limit: string };
  const parse = (flags: DlqFlags) => validateDlqOptions({ function: flags.function, messageId: flags.messageId, limit: parsePositiveInt('--limit', flags.limit, 1000) });
  const withClients = async (flags: DlqFlags, body: (clients: DlqClients, target: Target) => Promise<ExitCode>): Promise<void> =>
    run(deps, flags, async (target) => {
      const clients = deps.deadLetterClients(target, flags.profile);
      try {
        return await body(clients, target);
      } finally {
        clients.sqs.destroy();
        clients.lambda.destroy();
      }
    });

  addTargetOptions(
    dlq
      .command('list')
      .description('the dead letters of each asynchronously invoked function: when, why, after how many attempts')
      .option('--function <name>', 'only this function\'s queue (device-message or start-rotations)')
      .option('--message-id <id>', 'only this message')
      .option('--limit <n>', 'messages to read', '100')
      .option('--json', 'print JSON'),
  ).action(async (flags: DlqFlags) => {
    let options: ReturnType<typeof validateDlqOptions>;
    try {
      options = parse(flags);
    } catch (error) {
      return usage(deps, error);
    }
    await withClients(flags, async (clients) => {
      const listing = await listDeadLetters({ ...clients, namePrefix: flags.namePrefix ?? DEFAULT_NAME_PREFIX }, options);
      print(deps, flags.json, listing, () => formatListing(listing));
      return ExitCode.Ok;
    });
  });

  addTargetOptions(
    dlq
      .command('replay')
      .description('invoke the function again with each dead letter\'s original event; delete the message only when it succeeds')
      .option('--function <name>', 'only this function\'s queue (device-message or start-rotations)')
      .option('--message-id <id>', 'only this message')
      .option('--limit <n>', 'messages to replay', '100')
      .option('--dry-run', 'list what would be replayed and invoke nothing')
      .option('--yes', 'do not ask for confirmation')
      .option('--json', 'print JSON'),
  ).action(async (flags: DlqFlags & { dryRun?: boolean; yes?: boolean }) => {
    let options: ReturnType<typeof validateDlqOptions>;
    try {
      options = parse(flags);
    } catch (error) {
      return usage(deps, error);
    }
    await withClients(flags, async (clients) => {
      const confirm = async (planned: Parameters<typeof formatPlanned>[0]): Promise<boolean> => {
        if (planned.length <= 1 || flags.yes) return true;
        if (!deps.io.interactive) throw new UsageError(`this would replay ${planned.length} dead letters: re-run with --yes to confirm (or --dry-run to see them)`);
        for (const line of formatPlanned(planned)) deps.io.out(line);
        const yes = await deps.io.confirm(`Replay ${planned.length} dead letters?`);
        if (!yes) deps.io.err('rotor: nothing replayed');
        return yes;
      };
      const summary = await replayDeadLetters({ ...clients, namePrefix: flags.namePrefix ?? DEFAULT_NAME_PREFIX }, { ...options, dryRun: Boolean(flags.dryRun), confirm });
      print(deps, flags.json, summary, () => formatReplay(summary));
      return summary.failed > 0 ? ExitCode.Failure : ExitCode.Ok;
    });
  });
}

/**
 * Parses and runs one operator command on a program of its own, returning the exit code. The
 * tests and the e2e suite use it; commander's own usage errors (unknown option, missing value)
 * become exit code 2 like ours.
 */
export async function runOperatorCli(argv: readonly string[], overrides: Partial<OperatorDeps> = {}): Promise<number> {
  let code: number = ExitCode.Ok;
  const base = { ...defaultOperatorDeps(), ...overrides };
  const program = new Command('rotor').exitOverride().configureOutput({
    writeOut: (text) => base.io.out(text.trimEnd()),
    writeErr: (text) => base.io.err(text.trimEnd()),
  });
  registerOperatorCommands(program, { ...base, setExitCode: (c) => (code = c) });
  for (const command of program.commands) command.exitOverride();
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.code === 'commander.helpDisplayed' || error.code === 'commander.help' || error.code === 'commander.version' ? ExitCode.Ok : ExitCode.Usage;
    }
    throw error;
  }
  return code;
}
