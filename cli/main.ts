import { Command, CommanderError } from 'commander';
import { registerLocalCommands } from './local.js';
import { registerOperatorCommands } from './operator/index.js';

/**
 * `rotor`: a thin registry of command groups, each in its own file (cli/local.ts,
 * cli/operator/). A command reports failure by throwing (one line on stderr, exit 1) or by
 * setting its exit code.
 */
export async function main(argv: readonly string[]): Promise<number> {
  const program = new Command('rotor')
    .description('Rotates the X.509 certificates of an AWS IoT device fleet before they expire')
    .exitOverride()
    .showHelpAfterError(false);
  registerLocalCommands(program);
  registerOperatorCommands(program);
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
