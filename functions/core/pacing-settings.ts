import {
  BUCKETS,
  DEFAULT_PACING,
  DEFAULT_QUOTA_SETTINGS,
  DEFAULT_SAFETY_FRACTION,
  parseQuotasFile,
  QuotasFileError,
  type PacingSettings,
  type Quota,
  type QuotaSettings,
} from '../../domain/pacing/index.js';
import { ConfigurationError, optionalEnv, type Environment } from './environment.js';

/**
 * The pacing settings a function reads from its environment (Terraform's `api_quotas`,
 * `quota_safety_fraction` and `pacing_enabled`, or the local runtime):
 *
 * - ROTOR_PACING_ENABLED: "false" turns pacing off (every step calls AWS at once, as before).
 * - ROTOR_PACING_QUOTAS: a quotas file's JSON text (docs/fleet-scale.md), or a bare map of
 *   bucket → { rate, burst } as Terraform's `jsonencode(var.api_quotas)` writes it. Empty or
 *   absent: AWS's defaults.
 * - ROTOR_PACING_SAFETY_FRACTION: the share of each quota Rotor uses (0 < f ≤ 1, default 0.9);
 *   it wins over a safetyFraction inside the quotas text.
 * - ROTOR_TIME_SCALE (local runtime only): the workflow's time scale. At 0.01 a 900 s wait lasts
 *   9 s, so every rate is 100× and every interval 1/100 of AWS's, and the budget stays in step
 *   with the quotas the local runtime enforces at the same scale.
 */
export const PacingEnv = {
  Enabled: 'ROTOR_PACING_ENABLED',
  Quotas: 'ROTOR_PACING_QUOTAS',
  SafetyFraction: 'ROTOR_PACING_SAFETY_FRACTION',
  TimeScale: 'ROTOR_TIME_SCALE',
} as const;

export type PacingConfig =
  | { enabled: false }
  | {
      enabled: true;
      /** In the function's real time: rates already divided by timeScale. */
      settings: PacingSettings;
      /** As configured (AWS's time): what metrics report. */
      quotas: QuotaSettings;
      timeScale: number;
    };

const BUCKET_NAMES: readonly string[] = BUCKETS;

/** Terraform writes optional attributes as null, and a bare map is the quotas themselves. */
function quotasText(raw: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return raw; // parseQuotasFile names the JSON error
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return raw;
  const withoutNulls = (value: unknown): unknown =>
    typeof value === 'object' && value !== null && !Array.isArray(value)
      ? Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null).map(([k, v]) => [k, withoutNulls(v)]))
      : value;
  const keys = Object.keys(parsed);
  const bare = keys.length > 0 && keys.every((key) => BUCKET_NAMES.includes(key));
  return JSON.stringify(withoutNulls(bare ? { quotas: parsed } : parsed));
}

function positiveNumber(name: string, raw: string, max?: number): number {
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0 || (max !== undefined && value > max)) {
    throw new ConfigurationError(`${name} must be a number above 0${max !== undefined ? ` and at most ${max}` : ''}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

/** The same quotas with every rate and burst divided by the time scale (1: unchanged). */
export function scaleQuotas(quotas: QuotaSettings, timeScale: number): QuotaSettings {
  if (timeScale === 1) return quotas;
  const scaled = Object.fromEntries(
    Object.entries(quotas.quotas).map(([bucket, quota]): [string, Quota] => [
      bucket,
      quota.kind === 'rate' ? { ...quota, rate: quota.rate / timeScale, burst: quota.burst / timeScale } : quota,
    ]),
  ) as unknown as QuotaSettings['quotas'];
  return { quotas: scaled, safetyFraction: quotas.safetyFraction };
}

export function pacingConfig(env: Environment = process.env): PacingConfig {
  const enabled = optionalEnv(PacingEnv.Enabled, env);
  if (enabled !== undefined && !['true', 'false'].includes(enabled.toLowerCase())) {
    throw new ConfigurationError(`${PacingEnv.Enabled} must be "true" or "false", got ${JSON.stringify(enabled)}`);
  }
  if (enabled?.toLowerCase() === 'false') return { enabled: false };

  let quotas: QuotaSettings = DEFAULT_QUOTA_SETTINGS;
  const text = optionalEnv(PacingEnv.Quotas, env);
  if (text !== undefined) {
    try {
      quotas = parseQuotasFile(quotasText(text));
    } catch (error) {
      if (error instanceof QuotasFileError) throw new ConfigurationError(`${PacingEnv.Quotas}: ${error.message}`);
      throw error;
    }
  }
  const fraction = optionalEnv(PacingEnv.SafetyFraction, env);
  quotas = { ...quotas, safetyFraction: fraction === undefined ? (quotas.safetyFraction ?? DEFAULT_SAFETY_FRACTION) : positiveNumber(PacingEnv.SafetyFraction, fraction, 1) };
  const scaleText = optionalEnv(PacingEnv.TimeScale, env);
  const timeScale = scaleText === undefined ? 1 : positiveNumber(PacingEnv.TimeScale, scaleText);

  const { aimd } = DEFAULT_PACING;
  const settings: PacingSettings = {
    ...DEFAULT_PACING,
    quotas: scaleQuotas(quotas, timeScale),
    maxQueueMs: DEFAULT_PACING.maxQueueMs * timeScale,
    aimd: { ...aimd, intervalMs: aimd.intervalMs * timeScale, cooldownMs: aimd.cooldownMs * timeScale },
  };
  return { enabled: true, settings, quotas, timeScale };
}
