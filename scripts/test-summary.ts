import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Sums the results every runner wrote into the results folder (jest's --json output, the
 * Terraform tests' counts) and prints the one closing line CI reads: "N passed, N failed".
 * Exits non-zero when anything failed or when no test ran at all.
 */
interface Counts { passed: number; failed: number; skipped: number }

function fromJest(file: string): Counts {
  const report = JSON.parse(readFileSync(file, 'utf8')) as {
    numPassedTests: number; numFailedTests: number; numPendingTests: number; numTodoTests?: number;
    numRuntimeErrorTestSuites?: number;
  };
  // A suite that fails to load has no tests; count it as one failure so it cannot hide.
  const broken = report.numRuntimeErrorTestSuites ?? 0;
  return { passed: report.numPassedTests, failed: report.numFailedTests + broken, skipped: report.numPendingTests + (report.numTodoTests ?? 0) };
}

function fromCounts(file: string): Counts {
  const c = JSON.parse(readFileSync(file, 'utf8')) as Partial<Counts>;
  return { passed: c.passed ?? 0, failed: c.failed ?? 0, skipped: c.skipped ?? 0 };
}

const dir = process.argv[2] ?? '.rotor/test-results';
const total: Counts = { passed: 0, failed: 0, skipped: 0 };
if (existsSync(dir)) {
  for (const name of readdirSync(dir).sort()) {
    if (!name.endsWith('.json')) continue;
    const counts = name === 'jest.json' ? fromJest(join(dir, name)) : fromCounts(join(dir, name));
    console.log(`  ${name.replace(/\.json$/, '')}: ${counts.passed} passed, ${counts.failed} failed${counts.skipped ? `, ${counts.skipped} skipped` : ''}`);
    total.passed += counts.passed;
    total.failed += counts.failed;
    total.skipped += counts.skipped;
  }
}
const skipped = total.skipped ? `, ${total.skipped} skipped` : '';
console.log(`${total.passed} passed, ${total.failed} failed${skipped}`);
process.exit(total.failed > 0 || total.passed === 0 ? 1 : 0);
