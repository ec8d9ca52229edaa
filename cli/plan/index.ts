import { Command } from 'commander';
import { DEFAULT_CALENDAR, DEFAULT_PACING, QuotasFileError, DAY_S } from '../../domain/pacing/index.js';
import { ExitCode, UsageError } from '../operator/exit-codes.js';
import { addTargetOptions, defaultOperatorDeps, print, run, usage, type CommonFlags, type OperatorDeps } from '../operator/index.js';
import { parsePositiveInt } from '../operator/status.js';
import { readQuotasFile } from '../quotas-file.js';
import { formatPlan, plan } from './plan.js';

export { plan, formatPlan, type PlanReport, type PlanDeps, type PlanOptions } from './plan.js';

interface PlanFlags extends CommonFlags {
  quotas?: string;
  auditTask?: string;
  lookbackDays: string;
  windowDays?: string;
}

/** `rotor plan …`: the dry run of the next audit (docs/fleet-scale.md). cli/main.ts wires it in. */
export function registerPlanCommand(program: Command, overrides: Partial<OperatorDeps> = {}): Command {
  const deps: OperatorDeps = { ...defaultOperatorDeps(), ...overrides };
  addTargetOptions(
    program
      .command('plan')
      .description('dry run: how many devices the next audit would rotate, the quota floor, a day-by-day schedule and the expected completion')
      .option('--quotas <file>', 'quotas file (JSON) overriding AWS defaults and the safety fraction')
      .option('--audit-task <id>', 'plan from this audit task instead of the latest completed one')
      .option('--lookback-days <n>', 'how far back to look for the latest completed audit', '30')
      .option('--window-days <n>', 'spread the renewals over at least this many days')
      .option('--json', 'print JSON'),
  ).action(async (flags: PlanFlags) => {
    let options: { auditTaskId?: string; lookbackDays: number };
    let pacing = DEFAULT_PACING;
    let calendar = DEFAULT_CALENDAR;
    try {
      options = { auditTaskId: flags.auditTask, lookbackDays: parsePositiveInt('--lookback-days', flags.lookbackDays, 90) };
      if (flags.auditTask !== undefined && !/^[a-zA-Z0-9-]{1,40}$/.test(flags.auditTask)) throw new UsageError(`--audit-task ${JSON.stringify(flags.auditTask)} is not an audit task id`);
      if (flags.windowDays !== undefined) calendar = { ...calendar, minWindowS: parsePositiveInt('--window-days', flags.windowDays, 3650) * DAY_S };
      if (flags.quotas) pacing = { ...pacing, quotas: readQuotasFile(flags.quotas) };
    } catch (error) {
      return usage(deps, error instanceof QuotasFileError ? new UsageError(error.message) : error);
    }
    await run(deps, flags, async (target) => {
      const report = await plan(
        { iot: target.clients.iot, ddb: target.clients.ddb, tableName: target.tableName, now: deps.now, pacing, calendar, quotasSource: flags.quotas ? `${flags.quotas} × safety fraction ${pacing.quotas.safetyFraction}` : undefined },
        options,
      );
      print(deps, flags.json, report, () => formatPlan(report));
      return ExitCode.Ok;
    });
  });
  return program;
}
