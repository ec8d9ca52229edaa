import { createHash } from 'node:crypto';

/**
 * Who signs a rotation's new certificate, and how (issue 11, part 1). Pure: the settings are
 * parsed from an environment passed in, and every rule about them lives here.
 *
 * - `aws-iot`: IoT's CreateCertificateFromCsr. AWS's own CA; the certificate expires in 2049,
 *   so DEVICE_CERTIFICATE_EXPIRING_CHECK never fires for it again (AGE_CHECK still does).
 * - `private-ca`: AWS Private CA's IssueCertificate with the validity and template set here,
 *   GetCertificate, then IoT's RegisterCertificate (a CA registered in DEFAULT mode) or
 *   RegisterCertificateWithoutCA (SNI_ONLY), ACTIVE. The certificate expires when the validity
 *   says, so the expiring check fires again each cycle: rotation becomes a renewal loop.
 */
export const SignerKind = {
  AwsIot: 'aws-iot',
  PrivateCa: 'private-ca',
} as const;
export type SignerKind = (typeof SignerKind)[keyof typeof SignerKind];
export const SIGNER_KINDS: readonly SignerKind[] = Object.values(SignerKind);

/** How the Private CA's certificate is registered with IoT, which decides how a device certificate is registered. */
export const IotCaRegistration = {
  /** RegisterCertificate, with the CA certificate's PEM: IoT checks the chain. */
  Default: 'DEFAULT',
  /** RegisterCertificateWithoutCA: the CA is registered in SNI_ONLY mode (or not at all). */
  SniOnly: 'SNI_ONLY',
} as const;
export type IotCaRegistration = (typeof IotCaRegistration)[keyof typeof IotCaRegistration];
export const IOT_CA_REGISTRATIONS: readonly IotCaRegistration[] = Object.values(IotCaRegistration);

/** Private CA's SigningAlgorithm values. The CA signs with its own key, so the algorithm must fit the CA's key. */
export const SigningAlgorithm = {
  Sha256WithEcdsa: 'SHA256WITHECDSA',
  Sha384WithEcdsa: 'SHA384WITHECDSA',
  Sha512WithEcdsa: 'SHA512WITHECDSA',
  Sha256WithRsa: 'SHA256WITHRSA',
  Sha384WithRsa: 'SHA384WITHRSA',
  Sha512WithRsa: 'SHA512WITHRSA',
  Sm3WithSm2: 'SM3WITHSM2',
} as const;
export type SigningAlgorithm = (typeof SigningAlgorithm)[keyof typeof SigningAlgorithm];
export const SIGNING_ALGORITHMS: readonly SigningAlgorithm[] = Object.values(SigningAlgorithm);

/** The environment variables the settings are read from (wiring.json issue-certificate `environment`). */
export const SignerEnv = {
  Signer: 'ROTOR_SIGNER',
  CaArn: 'ROTOR_PCA_ARN',
  ValidityDays: 'ROTOR_PCA_VALIDITY_DAYS',
  TemplateArn: 'ROTOR_PCA_TEMPLATE_ARN',
  SigningAlgorithm: 'ROTOR_PCA_SIGNING_ALGORITHM',
  Registration: 'ROTOR_IOT_CA_REGISTRATION',
} as const;

/** A validity as Private CA takes it. Rotor sets days only: the audit thinks in days. */
export interface Validity {
  value: number;
  type: 'DAYS';
}

export interface PrivateCaSettings {
  kind: typeof SignerKind.PrivateCa;
  caArn: string;
  validity: Validity;
  templateArn: string;
  /** Unset: derived from the CA's key algorithm (DescribeCertificateAuthority, once per cold start). */
  signingAlgorithm?: SigningAlgorithm;
  registration: IotCaRegistration;
}

export type SignerSettings = { kind: typeof SignerKind.AwsIot } | PrivateCaSettings;

export const DEFAULT_VALIDITY_DAYS = 365;
/**
 * DEVICE_CERTIFICATE_EXPIRING_CHECK flags a certificate that expires within 30 days. A
 * validity at or under that would be flagged by the next audit the day it is issued, and every
 * rotation would start another: the validity must leave the device some time in between.
 */
export const EXPIRING_CHECK_DAYS = 30;

export class SignerSettingsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SignerSettingsError';
  }
}

const CA_ARN = /^arn:aws[a-z-]*:acm-pca:[a-z0-9-]+:\d{12}:certificate-authority\/[0-9a-f-]{36}$/;
const TEMPLATE_ARN = /^arn:aws[a-z-]*:acm-pca:::template\/[A-Za-z0-9_]+\/V\d+$/;

/** The end-entity template Private CA applies when none is named, in the CA's partition. */
export function endEntityTemplateArn(partition: string): string {
  return `arn:${partition}:acm-pca:::template/EndEntityCertificate/V1`;
}

type Env = Readonly<Record<string, string | undefined>>;

/** What a variable may hold, as a list of values or a pattern, and how an error names that. */
interface Rule<T extends string> {
  allowed: readonly T[] | RegExp;
  expected: string;
}

const oneOf = <T extends string>(allowed: readonly T[]): Rule<T> => ({ allowed, expected: `one of ${allowed.join(', ')}` });

const RULES = {
  [SignerEnv.Signer]: oneOf(SIGNER_KINDS),
  [SignerEnv.CaArn]: { allowed: CA_ARN, expected: 'a Private CA ARN (arn:aws:acm-pca:REGION:ACCOUNT:certificate-authority/UUID)' },
  [SignerEnv.TemplateArn]: { allowed: TEMPLATE_ARN, expected: 'a Private CA template ARN (arn:aws:acm-pca:::template/NAME/VN)' },
  [SignerEnv.SigningAlgorithm]: oneOf(SIGNING_ALGORITHMS),
  [SignerEnv.Registration]: oneOf(IOT_CA_REGISTRATIONS),
} as const;

/** A variable as set (trimmed), undefined when unset or empty, or an error naming it when it breaks its rule. */
function setting<T extends string>(env: Env, name: string, rule?: Rule<T>): T | undefined {
  const value = env[name]?.trim();
  if (!value) return undefined;
  if (rule && !(rule.allowed instanceof RegExp ? rule.allowed.test(value) : (rule.allowed as readonly string[]).includes(value))) {
    throw new SignerSettingsError(`${name} must be ${rule.expected}; got ${JSON.stringify(value)}`);
  }
  return value as T;
}

/**
 * Reads the signer settings. Unset means aws-iot (today's behaviour). With private-ca the CA
 * ARN is required; a value that is set but wrong is an error that names the variable, never a
 * silent default. The private-ca variables are ignored with aws-iot: a deployment sets them
 * all, empty or not, whichever signer it picks.
 */
export function parseSignerSettings(env: Env): SignerSettings {
  const kind = setting(env, SignerEnv.Signer, RULES[SignerEnv.Signer]) ?? SignerKind.AwsIot;
  if (kind === SignerKind.AwsIot) return { kind };

  const caArn = setting(env, SignerEnv.CaArn, RULES[SignerEnv.CaArn]);
  if (!caArn) throw new SignerSettingsError(`${SignerEnv.Signer}=private-ca needs ${SignerEnv.CaArn}, the ARN of the Private CA that signs the device certificates`);
  const partition = caArn.split(':')[1];

  const rawDays = setting(env, SignerEnv.ValidityDays);
  const days = rawDays === undefined ? DEFAULT_VALIDITY_DAYS : Number(rawDays);
  if (!Number.isInteger(days) || days <= 0) throw new SignerSettingsError(`${SignerEnv.ValidityDays} must be a whole number of days; got ${JSON.stringify(rawDays)}`);
  if (days <= EXPIRING_CHECK_DAYS) {
    throw new SignerSettingsError(
      `${SignerEnv.ValidityDays} must be more than ${EXPIRING_CHECK_DAYS}: DEVICE_CERTIFICATE_EXPIRING_CHECK flags certificates that expire within ${EXPIRING_CHECK_DAYS} days, so every new certificate would be rotated again at once; got ${days}`,
    );
  }

  const signingAlgorithm = setting(env, SignerEnv.SigningAlgorithm, RULES[SignerEnv.SigningAlgorithm]);
  return {
    kind,
    caArn,
    validity: { value: days, type: 'DAYS' },
    templateArn: setting(env, SignerEnv.TemplateArn, RULES[SignerEnv.TemplateArn]) ?? endEntityTemplateArn(partition),
    ...(signingAlgorithm ? { signingAlgorithm } : {}),
    registration: setting(env, SignerEnv.Registration, RULES[SignerEnv.Registration]) ?? IotCaRegistration.Default,
  };
}

/**
 * The signing algorithm for a CA's key (DescribeCertificateAuthority KeyAlgorithm): SHA-256
 * for RSA and P-256, SHA-384 for P-384, as the CA's own key strength suggests.
 */
export function signingAlgorithmFor(keyAlgorithm: string): SigningAlgorithm {
  if (keyAlgorithm.startsWith('RSA_')) return SigningAlgorithm.Sha256WithRsa;
  switch (keyAlgorithm) {
    case 'EC_prime256v1':
      return SigningAlgorithm.Sha256WithEcdsa;
    case 'EC_secp384r1':
      return SigningAlgorithm.Sha384WithEcdsa;
    case 'SM2':
      return SigningAlgorithm.Sm3WithSm2;
    default:
      throw new SignerSettingsError(`no signing algorithm known for the CA key algorithm ${JSON.stringify(keyAlgorithm)}; set ${SignerEnv.SigningAlgorithm}`);
  }
}

/**
 * IssueCertificate's IdempotencyToken: Private CA issues one certificate for repeated calls
 * with the same token within five minutes. Derived from the rotation and the key, so that an
 * SDK retry after a lost response, or the retry of a crashed attempt, gets the certificate
 * already issued, while a new CSR (another key) in the same rotation gets its own. 36
 * characters: the API's limit.
 */
export function issueIdempotencyToken(rotationId: string, keyFingerprint: string): string {
  return createHash('sha256').update(`${rotationId}\n${keyFingerprint}`).digest('hex').slice(0, 36);
}
