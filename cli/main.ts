import { Command, CommanderError } from 'commander';
import { registerDemoCommand } from './demo/index.js';
import { registerLocalCommands } from './local.js';
import { registerOperatorCommands } from './operator/index.js';
import { registerPlanCommand } from './plan/index.js';
import { registerSimulateCommand } from './simulate/index.js';
import { registerReportCommand } from './report/index.js';
import { registerTrustCommands } from './trust/index.js';
import { registerCaCommands } from './ca/index.js';

/**
 * `rotor`: a thin registry of command groups, each in its own file (cli/local.ts,
 * cli/operator/, cli/demo/). A command reports failure by throwing (one line on stderr, exit 1) or by
 * setting its exit code.
 */
export async function main(argv: readonly string[]): Promise<number> {
  // The SDK warns on Node 20 that versions from 2027 on need Node 22. Rotor pins its SDK
  // versions and its Lambdas run nodejs22.x; the warning would only clutter every command.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const program = new Command('rotor')
    .description('Rotates the X.509 certificates of an AWS IoT device fleet before they expire')
    .exitOverride()
    .showHelpAfterError(false);
  registerLocalCommands(program);
  registerOperatorCommands(program);
  registerDemoCommand(program);
  registerSimulateCommand(program);
  registerPlanCommand(program);
  registerReportCommand(program);
  registerTrustCommands(program);
  registerCaCommands(program);
  process.exitCode = undefined;
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    process.stderr.write(`rotor: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
  return typeof process.exitCode === 'number' ? process.exitCode : 0;
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
