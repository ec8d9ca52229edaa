import { StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { Command } from 'commander';
import { caRolloverName, CaRolloverTrigger, parseCaReference, type CaRolloverInput } from '../../domain/ca-rollover.js';
import { executionConsoleUrl } from '../../domain/naming.js';
import { ExitCode, UsageError } from '../operator/exit-codes.js';
import { addTargetOptions, defaultOperatorDeps, print, run, usage, type CommonFlags, type OperatorDeps } from '../operator/index.js';
import { servedConsole } from '../console/index.js';
import { caStatus, formatCaStatus } from './status.js';

/**
 * `rotor ca rollover --from OLD --to NEW` starts the CA rollover state machine (issue 11 part 2,
 * docs/operations.md "CA rollover"); `rotor ca status --ca OLD` shows where it stands. AWS, or
 * the local runtime with --local, as the operator commands.
 */
const ROTATE_DEVICE = /rotate-device$/;

export function rolloverInput(from: string, to: string): CaRolloverInput & { newCa: string } {
  const old = parseCaReference(from, 'OLD');
  if ('error' in old) throw new UsageError(`--from: ${old.error}`);
  const next = parseCaReference(to, 'NEW');
  if ('error' in next) throw new UsageError(`--to: ${next.error}`);
  if (next.kind !== 'private-ca') throw new UsageError('--to must be the ARN of the Private CA that will sign device certificates');
  return { oldCa: from.trim(), newCa: to.trim(), trigger: CaRolloverTrigger.Cli };
}

export function registerCaCommands(program: Command, overrides: Partial<OperatorDeps> = {}): Command {
  const deps: OperatorDeps = { ...defaultOperatorDeps(), ...overrides };
  const ca = program.command('ca').description('CA rollover: move the fleet from one CA to another, and see where it stands');

  addTargetOptions(
    ca
      .command('rollover')
      .description('start a CA rollover: verify NEW, switch issuing to it, rotate every device under OLD, then set OLD INACTIVE')
      .requiredOption('--from <old>', 'the old CA: its IoT CA certificate id or its Private CA ARN')
      .requiredOption('--to <new>', 'the new CA: its Private CA ARN (registered with IoT, ACTIVE)')
      .option('--json', 'print JSON'),
  ).action(async (flags: CommonFlags & { from: string; to: string }) => {
    let input: ReturnType<typeof rolloverInput>;
    try {
      input = rolloverInput(flags.from, flags.to);
    } catch (error) {
      return usage(deps, error);
    }
    await run(deps, flags, async (target) => {
      const stateMachineArn = (await target.stateMachineArn()).replace(ROTATE_DEVICE, 'ca-rollover');
      const name = caRolloverName(input.oldCa, input.newCa, deps.now().toISOString());
      const out = await target.clients.sfn.send(new StartExecutionCommand({ stateMachineArn, name, input: JSON.stringify(input) }));
      const executionArn = out.executionArn ?? '';
      const consoleBase = target.kind === 'local' && target.endpoint ? await servedConsole(target.endpoint) : undefined;
      const started = { executionArn, console: executionConsoleUrl(executionArn, consoleBase), from: input.oldCa, to: input.newCa };
      print(deps, flags.json, started, () => [`CA rollover started: ${executionArn}`, `  from ${input.oldCa}`, `  to   ${input.newCa}`, `  ${started.console}`, 'Follow it with: rotor ca status --ca <old CA certificate id>']);
      return ExitCode.Ok;
    });
  });

  addTargetOptions(
    ca
      .command('status')
      .description('devices moved and left under the old CA, the old CA\'s state, and the rollover\'s')
      .requiredOption('--ca <old>', 'the old CA\'s IoT CA certificate id')
      .option('--json', 'print JSON'),
  ).action(async (flags: CommonFlags & { ca: string }) => {
    const ref = parseCaReference(flags.ca, 'OLD');
    if ('error' in ref || ref.kind !== 'iot') return usage(deps, new UsageError('--ca must be the old CA\'s IoT CA certificate id (64 hex characters)'));
    await run(deps, flags, async (target) => {
      const report = await caStatus({ ...target.clients, tableName: target.tableName }, ref.caCertificateId);
      print(deps, flags.json, report, () => formatCaStatus(report));
      return ExitCode.Ok;
    });
  });
  return program;
}
