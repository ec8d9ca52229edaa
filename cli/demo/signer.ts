import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchGetCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { CURRENT_SK, thingPk, type RotationRecord } from '../../domain/index.js';
import { SignerKind } from '../../domain/signer.js';
import type { LocalAws } from '../../local/runtime.js';

/**
 * `rotor demo --signer`: who signed the fleet's new certificates and when they expire, read
 * back the way `rotor expiring` reads them, from the rotation records' newCertificateNotAfter
 * (what Issue certificate recorded off the certificate itself). With private-ca the range sits
 * at the audit's time plus the validity; with aws-iot it is IoT's 2049-12-31.
 */
export interface SignerFigures {
  /** The signer the functions ran with (the wiring's `signer` setting). */
  signer: SignerKind;
  /** With private-ca: the validity the functions were given, in days. */
  validityDays?: number;
  /**
   * The earliest and latest notAfter (ISO 8601) over the devices whose rotation succeeded, and
   * how many that is; absent when none did.
   */
  newCertificateNotAfter?: { min: string; max: string; devices: number };
}

/** BatchGetItem's limit per request. */
const BATCH = 100;

async function recordsOf(runtime: LocalAws, thingNames: readonly string[]): Promise<RotationRecord[]> {
  const db = DynamoDBDocumentClient.from(
    new DynamoDBClient({ endpoint: runtime.endpoints.awsEndpoint, region: runtime.endpoints.region, credentials: { accessKeyId: 'demo', secretAccessKey: 'demo' } }),
  );
  const table = runtime.endpoints.tableName;
  const records: RotationRecord[] = [];
  try {
    for (let i = 0; i < thingNames.length; i += BATCH) {
      let keys: Record<string, unknown>[] | undefined = thingNames.slice(i, i + BATCH).map((thingName) => ({ pk: thingPk(thingName), sk: CURRENT_SK }));
      // UnprocessedKeys are asked for again until none is left, as the API expects.
      while (keys && keys.length > 0) {
        const out = await db.send(new BatchGetCommand({ RequestItems: { [table]: { Keys: keys, ProjectionExpression: 'thingName, newCertificateNotAfter' } } }));
        records.push(...((out.Responses?.[table] ?? []) as RotationRecord[]));
        keys = out.UnprocessedKeys?.[table]?.Keys as Record<string, unknown>[] | undefined;
      }
    }
  } finally {
    db.destroy();
  }
  return records;
}

/** The signer figures of a run: `rotated` are the devices whose rotation succeeded. */
export async function signerFigures(runtime: LocalAws, rotated: readonly string[]): Promise<SignerFigures> {
  const settings = runtime.deployment.settings;
  const signer = settings.signer === SignerKind.PrivateCa ? SignerKind.PrivateCa : SignerKind.AwsIot;
  const figures: SignerFigures = { signer, ...(signer === SignerKind.PrivateCa ? { validityDays: Number(settings.privateCaValidityDays) } : {}) };
  const dates = (await recordsOf(runtime, rotated)).flatMap((r) => (r.newCertificateNotAfter ? [r.newCertificateNotAfter] : [])).sort();
  if (dates.length === 0) return figures;
  return { ...figures, newCertificateNotAfter: { min: dates[0], max: dates[dates.length - 1], devices: dates.length } };
}

/** The summary's line: who signed, and the new certificates' expiry range. */
export function formatSignerSummary(figures: Partial<SignerFigures>): string[] {
  if (!figures.signer) return [];
  const who = figures.signer === SignerKind.PrivateCa ? `private-ca (the local Private CA, validity ${figures.validityDays} days)` : 'aws-iot (CreateCertificateFromCsr)';
  const range = figures.newCertificateNotAfter;
  const expiry = !range
    ? 'no certificate issued'
    : range.min === range.max
      ? `${range.min} (${range.devices} devices)`
      : `${range.min} … ${range.max} (${range.devices} devices)`;
  return [`  signer                 ${who}`, `  new certs expire       ${expiry}`];
}
