import type { Command } from 'commander';
import { trustStateMachineArn } from '../../wiring/index.js';
import { ExitCode, UsageError } from '../operator/exit-codes.js';
import { addTargetOptions, defaultOperatorDeps, print, run, usage, type CommonFlags, type OperatorDeps } from '../operator/index.js';
import { DEFAULT_NAME_PREFIX } from '../operator/target.js';
import { formatTrustPush, trustPush } from './push.js';
import { formatTrustStatus, trustStatus } from './status.js';

/**
 * `rotor trust push|status`: the server trust-store update (docs/protocol.md v1.2) for a fleet,
 * on AWS or `--local`. The commands share the operator commands' target flags and exit codes.
 */
const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export function registerTrustCommands(program: Command, overrides: Partial<OperatorDeps> = {}): Command {
  const deps: OperatorDeps = { ...defaultOperatorDeps(), ...overrides };
  const trust = program.command('trust').description('push a new server trust bundle to devices (protocol v1.2) and follow it');

  addTargetOptions(
    trust
      .command('push')
      .description('check a bundle of server CAs, then start one paced trust update per device')
      .requiredOption('--bundle <file>', 'PEM file of the server CA certificates the devices should trust')
      .option('--thing <name>', 'a device to update (repeatable)', collect)
      .option('--all', 'every thing in the registry')
      .option('--push-id <id>', 'name of this push (default push-<time>); the same id and bundle start nothing twice')
      .option('--max-per-second <n>', 'start at most this many updates per second')
      .option('--json', 'print JSON'),
  ).action(async (flags: CommonFlags & { bundle: string; thing?: string[]; all?: boolean; pushId?: string; maxPerSecond?: string }) => {
    let maxPerSecond: number | undefined;
    try {
      if (flags.thing?.length && flags.all) throw new UsageError('use either --thing or --all, not both');
      if (!flags.thing?.length && !flags.all) throw new UsageError('name the devices: --thing NAME (repeatable) or --all');
      if (flags.pushId !== undefined && !/^[A-Za-z0-9_-]{1,64}$/.test(flags.pushId)) throw new UsageError('--push-id takes 1 to 64 letters, digits, - or _');
      if (flags.maxPerSecond !== undefined) {
        maxPerSecond = Number(flags.maxPerSecond);
        if (!(maxPerSecond > 0)) throw new UsageError('--max-per-second must be a positive number');
      }
    } catch (error) {
      return usage(deps, error);
    }
    await run(deps, flags, async (target) => {
      const arn = trustStateMachineArn(await target.stateMachineArn(), flags.namePrefix ?? DEFAULT_NAME_PREFIX);
      const report = await trustPush(
        { bundleFile: flags.bundle, things: flags.thing, all: flags.all, pushId: flags.pushId, maxPerSecond },
        { sfn: target.clients.sfn, iot: target.clients.iot, trustStateMachineArn: arn, now: deps.now, sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)) },
      );
      print(deps, flags.json, report, () => formatTrustPush(report));
      return ExitCode.Ok;
    });
  });

  addTargetOptions(
    trust
      .command('status')
      .description('how many devices trust the bundle: updated, refused (TRUST_<code>), not updated, pending')
      .option('--thing <name>', 'only this device (repeatable)', collect)
      .option('--all', 'every thing in the registry (the default)')
      .option('--bundle-id <id>', 'the bundle to count (default: the newest one pushed)')
      .option('--json', 'print JSON'),
  ).action(async (flags: CommonFlags & { thing?: string[]; all?: boolean; bundleId?: string }) => {
    try {
      if (flags.bundleId !== undefined && !/^[0-9a-f]{64}$/.test(flags.bundleId)) throw new UsageError('--bundle-id is 64 lowercase hex characters');
    } catch (error) {
      return usage(deps, error);
    }
    await run(deps, flags, async (target) => {
      const report = await trustStatus({ ddb: target.clients.ddb, iot: target.clients.iot, tableName: target.tableName }, { things: flags.thing, all: flags.all, bundleId: flags.bundleId });
      print(deps, flags.json, report, () => formatTrustStatus(report));
      return report.counts.refused + report.counts.notUpdated > 0 ? ExitCode.Failure : ExitCode.Ok;
    });
  });
  return trust;
}
