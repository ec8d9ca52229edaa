/**
 * The AWS quotas a rotation spends, as data. Each entry is one throttling bucket: an API (or a
 * group of APIs that AWS throttles together), a sustained rate and a burst, or a concurrency.
 * The defaults are AWS's published defaults for a large region (issue 10's figures); an account
 * can have them raised, so every one can be overridden from a quotas file, and Rotor only plans
 * to use `safetyFraction` of each so that other workloads in the account keep headroom.
 */

/** The buckets Rotor spends, by the name apiCallsByOperation uses (`service:Operation`). */
export const Bucket = {
  CreateCertificateFromCsr: 'iot:CreateCertificateFromCsr',
  DescribeCertificate: 'iot:DescribeCertificate',
  UpdateCertificate: 'iot:UpdateCertificate',
  DeleteCertificate: 'iot:DeleteCertificate',
  ListPrincipalThings: 'iot:ListPrincipalThings',
  /** Request CSR's check that the thing has no other certificate (issue 10 lists it at 10 TPS). */
  ListThingPrincipals: 'iot:ListThingPrincipals',
  ListAttachedPolicies: 'iot:ListAttachedPolicies',
  AttachPolicy: 'iot:AttachPolicy',
  DetachPolicy: 'iot:DetachPolicy',
  AttachThingPrincipal: 'iot:AttachThingPrincipal',
  DetachThingPrincipal: 'iot:DetachThingPrincipal',
  /** MQTT CONNECT requests per account: each rotation reconnects the device with its new pair. */
  MqttConnect: 'iot:Connect',
  Publish: 'iotdata:Publish',
  StartExecution: 'states:StartExecution',
  /** SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat share one bucket. */
  SendTask: 'states:SendTask',
  StateTransition: 'states:StateTransition',
  /** Concurrent executions per account: a concurrency, not a rate. */
  LambdaConcurrency: 'lambda:ConcurrentExecutions',
  /** The private-ca signer (domain/signer.ts): Private CA signs, IoT registers. */
  PcaIssueCertificate: 'acm-pca:IssueCertificate',
  PcaGetCertificate: 'acm-pca:GetCertificate',
  RegisterCertificate: 'iot:RegisterCertificate',
  RegisterCertificateWithoutCA: 'iot:RegisterCertificateWithoutCA',
} as const;
export type Bucket = (typeof Bucket)[keyof typeof Bucket];
export const BUCKETS: readonly Bucket[] = Object.values(Bucket);

/** Where a default comes from: AWS's published default, or an assumption to override. */
export type QuotaSource = 'aws-default' | 'assumed' | 'quotas-file';

export type Quota =
  | { kind: 'rate'; /** sustained calls per second */ rate: number; /** calls the bucket holds when full */ burst: number; source: QuotaSource }
  | { kind: 'concurrency'; concurrency: number; source: QuotaSource };

export type QuotaTable = Readonly<Record<Bucket, Quota>>;

function rate(rps: number, burst = rps, source: QuotaSource = 'aws-default'): Quota {
  return { kind: 'rate', rate: rps, burst, source };
}

/**
 * AWS defaults (issue 10). IoT publishes no burst for its control plane: one second's worth is
 * assumed. ListAttachedPolicies is not in the issue's list: 10 TPS is assumed, the lowest IoT
 * control-plane default, so that the plan errs on the slow side until a quotas file says better.
 */
export const AWS_DEFAULT_QUOTAS: QuotaTable = {
  [Bucket.CreateCertificateFromCsr]: rate(15),
  [Bucket.DescribeCertificate]: rate(10),
  [Bucket.UpdateCertificate]: rate(10),
  [Bucket.DeleteCertificate]: rate(10),
  [Bucket.ListPrincipalThings]: rate(10),
  [Bucket.ListThingPrincipals]: rate(10),
  [Bucket.ListAttachedPolicies]: rate(10, 10, 'assumed'),
  [Bucket.AttachPolicy]: rate(15),
  [Bucket.DetachPolicy]: rate(15),
  [Bucket.AttachThingPrincipal]: rate(15),
  [Bucket.DetachThingPrincipal]: rate(15),
  [Bucket.MqttConnect]: rate(500),
  [Bucket.Publish]: rate(20_000),
  [Bucket.StartExecution]: rate(300, 1_300),
  [Bucket.SendTask]: rate(500, 3_000),
  [Bucket.StateTransition]: rate(1_500, 5_000),
  [Bucket.LambdaConcurrency]: { kind: 'concurrency', concurrency: 1_000, source: 'aws-default' },
  // Private CA: 25 (IssueCertificate) and 75 (GetCertificate) TPS are the defaults as remembered
  // from the AWS General Reference's Private CA quota table, which could not be consulted when
  // they were written: assumed, so that a quotas file (or Service Quotas) says better. The IoT
  // registrations take the lowest IoT control-plane default, like ListAttachedPolicies.
  [Bucket.PcaIssueCertificate]: rate(25, 25, 'assumed'),
  [Bucket.PcaGetCertificate]: rate(75, 75, 'assumed'),
  [Bucket.RegisterCertificate]: rate(10, 10, 'assumed'),
  [Bucket.RegisterCertificateWithoutCA]: rate(10, 10, 'assumed'),
};

/** What Rotor plans with: the quotas, and the share of each it allows itself. */
export interface QuotaSettings {
  quotas: QuotaTable;
  /** 0 < f ≤ 1: Rotor paces to f × each quota. */
  safetyFraction: number;
}

export const DEFAULT_SAFETY_FRACTION = 0.9;

export const DEFAULT_QUOTA_SETTINGS: QuotaSettings = { quotas: AWS_DEFAULT_QUOTAS, safetyFraction: DEFAULT_SAFETY_FRACTION };

export class QuotasFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QuotasFileError';
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function positive(value: unknown, where: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new QuotasFileError(`${where} must be a number above 0; got ${JSON.stringify(value)}`);
  return value;
}

/**
 * Reads a quotas file (JSON):
 *
 *     { "safetyFraction": 0.8,
 *       "quotas": { "iot:DescribeCertificate": { "rate": 50 },
 *                   "states:StartExecution": { "rate": 150, "burst": 800 },
 *                   "lambda:ConcurrentExecutions": { "concurrency": 100 } } }
 *
 * Every field is optional; what is not named keeps its default. A name Rotor does not know, a
 * rate given for a concurrency (or the reverse), or a value that is not a positive number is
 * an error naming the field: a typo must not silently leave a default in place.
 */
export function parseQuotasFile(text: string, base: QuotaSettings = DEFAULT_QUOTA_SETTINGS): QuotaSettings {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new QuotasFileError(`the quotas file is not JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (!isObject(parsed)) throw new QuotasFileError('the quotas file must be a JSON object with "quotas" and/or "safetyFraction"');
  const unknownTop = Object.keys(parsed).filter((key) => key !== 'quotas' && key !== 'safetyFraction' && key !== '$comment');
  if (unknownTop.length) throw new QuotasFileError(`unknown field(s) ${unknownTop.join(', ')}: expected "quotas" and/or "safetyFraction"`);

  let safetyFraction = base.safetyFraction;
  if (parsed.safetyFraction !== undefined) {
    safetyFraction = positive(parsed.safetyFraction, 'safetyFraction');
    if (safetyFraction > 1) throw new QuotasFileError(`safetyFraction must be at most 1; got ${safetyFraction}`);
  }

  const quotas: Record<Bucket, Quota> = { ...base.quotas };
  if (parsed.quotas !== undefined) {
    if (!isObject(parsed.quotas)) throw new QuotasFileError('"quotas" must be an object keyed by bucket name');
    for (const [name, value] of Object.entries(parsed.quotas)) {
      if (!(BUCKETS as readonly string[]).includes(name)) throw new QuotasFileError(`unknown quota ${JSON.stringify(name)}; known quotas: ${BUCKETS.join(', ')}`);
      const bucket = name as Bucket;
      if (!isObject(value)) throw new QuotasFileError(`quotas.${name} must be an object`);
      const current = quotas[bucket];
      const fields = Object.keys(value);
      if (current.kind === 'concurrency') {
        if (fields.some((field) => field !== 'concurrency')) throw new QuotasFileError(`quotas.${name} is a concurrency: only "concurrency" may be set`);
        quotas[bucket] = { kind: 'concurrency', concurrency: Math.floor(positive(value.concurrency, `quotas.${name}.concurrency`)), source: 'quotas-file' };
      } else {
        if (fields.some((field) => field !== 'rate' && field !== 'burst')) throw new QuotasFileError(`quotas.${name} is a rate: only "rate" and "burst" may be set`);
        const r = value.rate === undefined ? current.rate : positive(value.rate, `quotas.${name}.rate`);
        // A rate given without a burst keeps the bucket as deep in seconds as the default's.
        const burst = value.burst === undefined ? Math.max(1, (current.burst / current.rate) * r) : positive(value.burst, `quotas.${name}.burst`);
        if (burst < 1) throw new QuotasFileError(`quotas.${name}.burst must be at least 1`);
        quotas[bucket] = { kind: 'rate', rate: r, burst, source: 'quotas-file' };
      }
    }
  }
  return { quotas, safetyFraction };
}
