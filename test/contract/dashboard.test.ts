import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { METRICS_NAMESPACE } from '../../functions/core/telemetry';
import { REPO_ROOT } from '../../wiring/index';

/**
 * The fleet dashboard and alarms (terraform/dashboard.tf, issue 10 part 8) chart metrics by
 * name, and CloudWatch shows an empty graph, never an error, for a name nothing emits. So every
 * Rotor metric the dashboard or an alarm names must be emitted by the functions' code, and
 * every AWS metric must be one the service publishes.
 */
const DASHBOARD = readFileSync(join(REPO_ROOT, 'terraform', 'dashboard.tf'), 'utf8');

/** Metrics AWS publishes, as documented for each namespace the dashboard reads. */
const AWS_METRICS: Record<string, Set<string>> = {
  'AWS/States': new Set(['ExecutionsStarted', 'ExecutionsSucceeded', 'ExecutionsFailed', 'ExecutionsAborted', 'ExecutionsTimedOut', 'ExecutionThrottled', 'ExecutionTime']),
  'AWS/SQS': new Set(['ApproximateNumberOfMessagesVisible', 'ApproximateNumberOfMessagesNotVisible', 'ApproximateAgeOfOldestMessage', 'NumberOfMessagesSent', 'NumberOfMessagesDeleted']),
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** The functions' code, without the declaration of the metric names themselves. */
const CODE = sourceFiles(join(REPO_ROOT, 'functions'))
  .filter((file) => !file.endsWith(join('core', 'telemetry.ts')))
  .map((file) => readFileSync(file, 'utf8'))
  .join('\n');

function emitted(metric: string): boolean {
  return CODE.includes(`MetricName.${metric}`) || CODE.includes(`'${metric}'`) || CODE.includes(`"${metric}"`);
}

/** Every Rotor metric name dashboard.tf uses: in SEARCH expressions, metric arrays, alarms and Metrics Insights queries. */
function rotorMetrics(): Set<string> {
  const names = new Set<string>();
  for (const [, name] of DASHBOARD.matchAll(/MetricName=\\"(\w+)\\"/g)) names.add(name);
  for (const [, name] of DASHBOARD.matchAll(/\[local\.metrics_namespace, "(\w+)"/g)) names.add(name);
  for (const [, name] of DASHBOARD.matchAll(/namespace\s*=\s*local\.metrics_namespace\s*\n\s*metric_name\s*=\s*"(\w+)"/g)) names.add(name);
  for (const [, name] of DASHBOARD.matchAll(/SELECT \w+\((\w+)\) FROM SCHEMA\(\\"\$\{local\.metrics_namespace\}\\"/g)) names.add(name);
  return names;
}

describe('the fleet dashboard and alarms', () => {
  it('read the namespace the functions write to', () => {
    expect(DASHBOARD).toContain(`metrics_namespace = "${METRICS_NAMESPACE}"`);
    // No Rotor metric is addressed by a namespace typed anywhere else.
    expect(DASHBOARD.match(/"Rotor"/g) ?? []).toHaveLength(1);
  });

  it('chart the figures issue 10 asks for', () => {
    // Started, succeeded, failed (by reason), in flight, throttled calls, pacing rate, oldest in flight.
    expect([...rotorMetrics()]).toEqual(
      expect.arrayContaining(['RotationsStarted', 'RotationsSucceeded', 'RotationsFailed', 'RotationsInFlight', 'ThrottledCalls', 'PacingRate', 'OldestInFlightAgeSeconds']),
    );
  });

  it('name only Rotor metrics the functions emit', () => {
    const notEmitted = [...rotorMetrics()].filter((metric) => !emitted(metric));
    expect(notEmitted).toEqual([]);
  });

  it('name only metrics AWS publishes', () => {
    const unknown: string[] = [];
    for (const [namespace, known] of Object.entries(AWS_METRICS)) {
      const quoted = namespace.replace('/', '\\/');
      for (const [, name] of DASHBOARD.matchAll(new RegExp(`"${quoted}", "(\\w+)"`, 'g'))) if (!known.has(name)) unknown.push(`${namespace} ${name}`);
      for (const [, name] of DASHBOARD.matchAll(new RegExp(`namespace\\s*=\\s*"${quoted}"\\s*\\n\\s*metric_name\\s*=\\s*"(\\w+)"`, 'g'))) if (!known.has(name)) unknown.push(`${namespace} ${name}`);
    }
    // The state machine's metrics are named through a list in locals.
    const stateMachineList = /for name in \[([^\]]*)\] : name => \["AWS\/States"/.exec(DASHBOARD);
    expect(stateMachineList).not.toBeNull();
    for (const [, name] of (stateMachineList as RegExpExecArray)[1].matchAll(/"(\w+)"/g)) if (!AWS_METRICS['AWS/States'].has(name)) unknown.push(`AWS/States ${name}`);
    expect(unknown).toEqual([]);
  });

  it('finds what it checks: the parser sees the gauge\'s metrics in the dashboard', () => {
    // Guards the regular expressions above against matching nothing.
    expect(rotorMetrics().has('RotationsInFlight')).toBe(true);
    expect(rotorMetrics().has('OldestInFlightAgeSeconds')).toBe(true);
    expect(emitted('OldestInFlightAgeSeconds')).toBe(true);
    expect(emitted('NoSuchMetric')).toBe(false);
  });
});
