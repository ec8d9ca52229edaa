import { readFile } from 'node:fs/promises';
import { ListThingsCommand, type IoTClient } from '@aws-sdk/client-iot';
import { StartExecutionCommand, type SFNClient } from '@aws-sdk/client-sfn';
import { isThingName, parseTrustBundle, TRUST_UPDATE_CALLS, trustUpdateExecutionName, type TrustBundle, type TrustUpdateInput } from '../../domain/index.js';
import { compileDemand, RateBudget } from '../../domain/pacing/rate-budget.js';
import { DEFAULT_QUOTA_SETTINGS, type Bucket, type QuotaSettings } from '../../domain/pacing/quotas.js';
import { CliError, ExitCode, UsageError } from '../operator/exit-codes.js';

/**
 * `rotor trust push` (docs/protocol.md v1.2, C1–C2): check the bundle with the device's own
 * rules (T1) before anything is sent, then start one trust-update execution per device, paced
 * by the calls each update makes on the account's budgets.
 */
export interface TrustPushOptions {
  bundleFile: string;
  /** The devices: these things, or every thing in the registry (`all`). */
  things?: string[];
  all?: boolean;
  /** One id for the push; the same id (and bundle) starts nothing twice. Default: push-<time>. */
  pushId?: string;
  /** At most this many updates started per second, below what the budgets allow. */
  maxPerSecond?: number;
}

export interface TrustPushDeps {
  sfn: SFNClient;
  iot: IoTClient;
  trustStateMachineArn: string;
  now: () => Date;
  sleep: (ms: number) => Promise<void>;
  quotas?: QuotaSettings;
}

export interface TrustPushReport {
  pushId: string;
  bundleId: string;
  certificates: { subject: string; notAfter: string; fingerprint: string }[];
  devices: number;
  started: string[];
  /** Things whose update of this push had already been started (a repeated push). */
  alreadyStarted: string[];
  /** How long the starts waited for the budgets, in total. */
  pacedMs: number;
}

/** C1: a bad file is refused with the reason, before any device is looked up or sent anything. */
export async function readBundle(file: string, now: Date): Promise<{ bundle: TrustBundle; pem: string }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read the bundle ${file}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const parsed = parseTrustBundle(text, now);
  if (!parsed.ok) throw new CliError(`the bundle ${file} is refused, nothing was sent: ${parsed.error}`, ExitCode.Failure);
  // The certificates as parsed, one PEM after the other: the bundle every device gets.
  return { bundle: parsed.value, pem: parsed.value.certificates.map((c) => c.pem.trim()).join('\n') + '\n' };
}

async function allThings(iot: IoTClient): Promise<string[]> {
  const names: string[] = [];
  let nextToken: string | undefined;
  do {
    const page = await iot.send(new ListThingsCommand({ maxResults: 250, nextToken }));
    names.push(...(page.things ?? []).map((t) => t.thingName ?? '').filter(Boolean));
    nextToken = page.nextToken;
  } while (nextToken);
  return names.sort();
}

/** The budgets a push spends, from the quotas (the same table and safety fraction the functions pace by). */
export function trustPushBudget(quotas: QuotaSettings = DEFAULT_QUOTA_SETTINGS): RateBudget {
  const budget = new RateBudget();
  for (const bucket of Object.keys(TRUST_UPDATE_CALLS) as Bucket[]) {
    const quota = quotas.quotas[bucket];
    if (quota?.kind === 'rate') budget.setRate(bucket, quota.rate * quotas.safetyFraction, Math.max(1, quota.burst * quotas.safetyFraction));
  }
  return budget;
}

export function defaultPushId(now: Date): string {
  return `push-${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}`;
}

export async function trustPush(options: TrustPushOptions, deps: TrustPushDeps): Promise<TrustPushReport> {
  const { bundle, pem } = await readBundle(options.bundleFile, deps.now());
  if (options.things?.length && options.all) throw new UsageError('use either --thing or --all, not both');
  if (!options.things?.length && !options.all) throw new UsageError('name the devices: --thing NAME (repeatable) or --all');
  for (const thing of options.things ?? []) if (!isThingName(thing)) throw new UsageError(`${JSON.stringify(thing)} is not a valid thing name`);
  const things = options.all ? await allThings(deps.iot) : [...new Set(options.things)];
  const pushId = options.pushId ?? defaultPushId(deps.now());

  const budget = trustPushBudget(deps.quotas);
  const demand = compileDemand(TRUST_UPDATE_CALLS);
  const minGapMs = options.maxPerSecond ? 1000 / options.maxPerSecond : 0;
  let lastStartMs = -Infinity;
  const report: TrustPushReport = {
    pushId,
    bundleId: bundle.bundleId,
    certificates: bundle.certificates.map(({ subject, notAfter, fingerprint }) => ({ subject, notAfter, fingerprint })),
    devices: things.length,
    started: [],
    alreadyStarted: [],
    pacedMs: 0,
  };
  for (const thingName of things) {
    const nowMs = deps.now().getTime();
    const at = Math.max(budget.reserve(demand, nowMs), lastStartMs + minGapMs);
    if (at > nowMs) {
      report.pacedMs += at - nowMs;
      await deps.sleep(at - nowMs);
    }
    lastStartMs = Math.max(at, nowMs);
    const input: TrustUpdateInput = { thingName, bundleId: bundle.bundleId, bundle: pem, pushId };
    try {
      await deps.sfn.send(new StartExecutionCommand({ stateMachineArn: deps.trustStateMachineArn, name: trustUpdateExecutionName(thingName, bundle.bundleId, pushId), input: JSON.stringify(input) }));
      report.started.push(thingName);
    } catch (error) {
      if (error instanceof Error && error.name === 'ExecutionAlreadyExists') report.alreadyStarted.push(thingName);
      else throw error;
    }
  }
  return report;
}

export function formatTrustPush(report: TrustPushReport): string[] {
  return [
    `bundle ${report.bundleId}`,
    ...report.certificates.map((c) => `  ${c.subject}  (valid until ${c.notAfter})`),
    `push ${report.pushId}: ${report.started.length} update(s) started, ${report.alreadyStarted.length} already started, of ${report.devices} device(s)` +
      (report.pacedMs > 0 ? `; paced ${(report.pacedMs / 1000).toFixed(1)} s` : ''),
    `follow it with: rotor trust status --bundle-id ${report.bundleId}`,
  ];
}
