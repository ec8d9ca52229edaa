import 'reflect-metadata';
import { randomBytes, randomUUID, webcrypto, X509Certificate as NodeX509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AuthorityKeyIdentifierExtension,
  Pkcs10CertificateRequest,
  Pkcs10CertificateRequestGenerator,
  SubjectKeyIdentifierExtension,
  X509Certificate,
  X509CertificateGenerator,
  type Extension,
  type JsonName,
} from '@peculiar/x509';
import { pemToDer } from '../../domain/pem.js';
import { AwsError, LOCAL_ACCOUNT, LOCAL_REGION } from '../types.js';
import {
  generateCaKey,
  importSigningKey,
  keyAlgorithmOf,
  publicKeyOf,
  requireSameFamily,
  signingAlgorithmOf,
  webSigningAlgorithm,
  type KeyAlgorithm,
  type LocalSigningAlgorithm,
} from './algorithms.js';
import { isCaTemplate, Template, templateExtensions, templateOf } from './templates.js';
import { notAfterOf, notBeforeOf, type ValidityInput } from './validity.js';

export const CaStatus = {
  Creating: 'CREATING',
  PendingCertificate: 'PENDING_CERTIFICATE',
  Active: 'ACTIVE',
  Disabled: 'DISABLED',
  Expired: 'EXPIRED',
  Failed: 'FAILED',
  Deleted: 'DELETED',
} as const;
export type CaStatus = (typeof CaStatus)[keyof typeof CaStatus];

export type CaType = 'ROOT' | 'SUBORDINATE';

/** The ASN1Subject fields and the attribute each one is in a distinguished name. */
const SUBJECT_FIELDS: Record<string, string> = {
  Country: 'C',
  Organization: 'O',
  OrganizationalUnit: 'OU',
  DistinguishedNameQualifier: '2.5.4.46',
  State: 'ST',
  CommonName: 'CN',
  SerialNumber: '2.5.4.5',
  Locality: 'L',
  Title: '2.5.4.12',
  Surname: '2.5.4.4',
  GivenName: '2.5.4.42',
  Initials: '2.5.4.43',
  Pseudonym: '2.5.4.65',
  GenerationQualifier: '2.5.4.44',
};

export interface CaConfiguration {
  KeyAlgorithm: KeyAlgorithm;
  SigningAlgorithm: LocalSigningAlgorithm;
  Subject: Record<string, string>;
}

export interface CaRecord {
  arn: string;
  type: CaType;
  status: CaStatus;
  /** ISO timestamps: the state is persisted as JSON. */
  createdAt: string;
  lastStateChangeAt: string;
  configuration: CaConfiguration;
  usageMode: 'GENERAL_PURPOSE' | 'SHORT_LIVED_CERTIFICATE';
  keyStorageSecurityStandard: string;
  /** The CA's own key: a local stand-in for the HSM-held key of AWS Private CA. */
  privateKeyPem: string;
  csrPem: string;
  certificatePem?: string;
  chainPem?: string;
  serial?: string;
  notBefore?: string;
  notAfter?: string;
  idempotencyToken?: string;
}

interface IssuedRecord {
  certificateArn: string;
  caArn: string;
  certificatePem: string;
  chainPem?: string;
  /** Epoch ms: GetCertificate answers RequestInProgressException until then, as AWS does right after issue. */
  availableAt: number;
}

interface PcaState {
  authorities: Record<string, CaRecord>;
  issued: Record<string, IssuedRecord>;
  /** `${caArn} ${token}` → the certificate issued and when (tokens last five minutes). */
  idempotency: Record<string, { certificateArn: string; at: number }>;
}

export interface PrivateCaOptions {
  region?: string;
  account?: string;
  now?: () => Date;
  dataDir?: string;
  /** How long an issued certificate stays "in progress" (ms); 0 makes it available at once. Default 300. */
  issueLatencyMs?: number;
}

export interface CreateCaInput {
  CertificateAuthorityConfiguration?: unknown;
  CertificateAuthorityType?: unknown;
  IdempotencyToken?: unknown;
  KeyStorageSecurityStandard?: unknown;
  UsageMode?: unknown;
  RevocationConfiguration?: unknown;
}

export interface IssueInput {
  caArn: string;
  csrPem: string;
  signingAlgorithm: unknown;
  templateArn?: unknown;
  validity: ValidityInput | undefined;
  validityNotBefore?: ValidityInput;
  idempotencyToken?: unknown;
}

const STATE_FILE = 'private-ca.json';
const CA_ARN = /^arn:aws[a-z-]*:acm-pca:[a-z0-9-]+:\d{12}:certificate-authority\/[0-9a-f-]{36}$/;
const IDEMPOTENCY_MS = 5 * 60_000;
const SHORT_LIVED_MAX_MS = 7 * 86_400_000;

function notFound(message: string): AwsError {
  return new AwsError('ResourceNotFoundException', message);
}

function invalidState(message: string): AwsError {
  return new AwsError('InvalidStateException', message);
}

function invalidArgs(message: string): AwsError {
  return new AwsError('InvalidArgsException', message);
}

function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] &= 0x7f;
  bytes[0] |= 0x01; // never a leading zero byte: the hex is the serial as the ARN writes it
  return bytes.toString('hex');
}

function subjectName(subject: unknown): { json: JsonName; fields: Record<string, string> } {
  if (typeof subject !== 'object' || subject === null || Array.isArray(subject)) throw invalidArgs('CertificateAuthorityConfiguration.Subject is required');
  const fields: Record<string, string> = {};
  const json: JsonName = [];
  for (const [field, value] of Object.entries(subject as Record<string, unknown>)) {
    if (value === undefined || value === null) continue;
    const attribute = SUBJECT_FIELDS[field];
    if (!attribute) throw invalidArgs(`Subject.${field} is not an ASN1Subject field`);
    if (typeof value !== 'string' || value.length === 0 || value.length > 64) throw invalidArgs(`Subject.${field} must be a string of 1 to 64 characters`);
    fields[field] = value;
    json.push({ [attribute]: [value] });
  }
  if (json.length === 0) throw invalidArgs('CertificateAuthorityConfiguration.Subject must name at least one field');
  return { json, fields };
}

function parseCertificate(pem: string, what: string): X509Certificate {
  if (!pemToDer(pem.trim(), 'CERTIFICATE')) throw new AwsError('MalformedCertificateException', `${what} is not a PEM "CERTIFICATE" block`);
  try {
    return new X509Certificate(pem);
  } catch {
    throw new AwsError('MalformedCertificateException', `${what} is not a valid X.509 certificate`);
  }
}

/**
 * AWS Private CA, locally: certificate authorities with real keys (EC or RSA, made here and
 * kept in the data dir — AWS keeps them in an HSM), their own CSR, the installed CA
 * certificate, and IssueCertificate/GetCertificate with AWS's asynchronous issue (a certificate
 * is "in progress" for a moment, so the SDK's waitUntilCertificateIssued is exercised).
 */
export class PrivateCa {
  readonly region: string;
  readonly account: string;
  private readonly now: () => Date;
  private readonly dataDir?: string;
  private readonly issueLatencyMs: number;
  private state: PcaState;
  private readonly signingKeys = new Map<string, Promise<webcrypto.CryptoKey>>();

  constructor(options: PrivateCaOptions = {}) {
    this.region = options.region ?? LOCAL_REGION;
    this.account = options.account ?? LOCAL_ACCOUNT;
    this.now = options.now ?? (() => new Date());
    this.dataDir = options.dataDir;
    this.issueLatencyMs = options.issueLatencyMs ?? 300;
    this.state = this.load();
  }

  // ---- certificate authorities ------------------------------------------------------------

  async createCertificateAuthority(input: CreateCaInput): Promise<string> {
    const token = input.IdempotencyToken;
    if (token !== undefined && (typeof token !== 'string' || !/^[\w-]{1,36}$/.test(token))) throw invalidArgs('IdempotencyToken must be 1 to 36 word characters');
    if (token) {
      const earlier = Object.values(this.state.authorities).find((ca) => ca.idempotencyToken === token);
      if (earlier) return earlier.arn;
    }
    const config = input.CertificateAuthorityConfiguration as Record<string, unknown> | undefined;
    if (!config || typeof config !== 'object') throw invalidArgs('CertificateAuthorityConfiguration is required');
    const keyAlgorithm = keyAlgorithmOf(config.KeyAlgorithm);
    const signingAlgorithm = signingAlgorithmOf(config.SigningAlgorithm);
    requireSameFamily(keyAlgorithm, signingAlgorithm);
    const subject = subjectName(config.Subject);
    const type = input.CertificateAuthorityType;
    if (type !== 'ROOT' && type !== 'SUBORDINATE') throw invalidArgs('CertificateAuthorityType must be ROOT or SUBORDINATE');
    const usageMode = input.UsageMode ?? 'GENERAL_PURPOSE';
    if (usageMode !== 'GENERAL_PURPOSE' && usageMode !== 'SHORT_LIVED_CERTIFICATE') throw invalidArgs('UsageMode must be GENERAL_PURPOSE or SHORT_LIVED_CERTIFICATE');
    const keyStorage = input.KeyStorageSecurityStandard ?? 'FIPS_140_2_LEVEL_3_OR_HIGHER';
    if (typeof keyStorage !== 'string') throw invalidArgs('KeyStorageSecurityStandard must be a string');

    const key = await generateCaKey(keyAlgorithm);
    const csr = await Pkcs10CertificateRequestGenerator.create({
      name: subject.json,
      keys: { privateKey: key.privateKey, publicKey: key.publicKey } as webcrypto.CryptoKeyPair,
      signingAlgorithm: webSigningAlgorithm(keyAlgorithm, signingAlgorithm),
    });
    const at = this.now().toISOString();
    const arn = `arn:aws:acm-pca:${this.region}:${this.account}:certificate-authority/${randomUUID()}`;
    this.state.authorities[arn] = {
      arn,
      type,
      // AWS passes through CREATING in a few seconds; here the key exists at once.
      status: CaStatus.PendingCertificate,
      createdAt: at,
      lastStateChangeAt: at,
      configuration: { KeyAlgorithm: keyAlgorithm, SigningAlgorithm: signingAlgorithm, Subject: subject.fields },
      usageMode,
      keyStorageSecurityStandard: keyStorage,
      privateKeyPem: key.privateKeyPem,
      csrPem: csr.toString('pem'),
      idempotencyToken: typeof token === 'string' ? token : undefined,
    };
    this.save();
    return arn;
  }

  describe(arn: string): CaRecord {
    const ca = this.authority(arn);
    return { ...ca, status: this.statusOf(ca) };
  }

  list(): CaRecord[] {
    return Object.values(this.state.authorities)
      .map((ca) => ({ ...ca, status: this.statusOf(ca) }))
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.arn.localeCompare(b.arn));
  }

  csrOf(arn: string): string {
    return this.authority(arn).csrPem;
  }

  /**
   * ImportCertificateAuthorityCertificate: the certificate must be for this CA's key; a ROOT's
   * must be self-signed, a SUBORDINATE's must be signed by the first certificate of the chain.
   */
  async importCertificate(arn: string, certificatePem: string, chainPem?: string): Promise<void> {
    const ca = this.authority(arn);
    if (ca.status !== CaStatus.PendingCertificate && ca.status !== CaStatus.Active) {
      throw invalidState(`certificate authority ${arn} is ${ca.status}`);
    }
    const certificate = parseCertificate(certificatePem, 'Certificate');
    const own = await publicKeyOf(ca.privateKeyPem, ca.configuration.KeyAlgorithm);
    const ownSpki = Buffer.from(await webcrypto.subtle.exportKey('spki', own));
    if (!ownSpki.equals(Buffer.from(certificate.publicKey.rawData))) {
      throw new AwsError('CertificateMismatchException', "the certificate's public key is not this certificate authority's key");
    }
    const node = new NodeX509Certificate(certificatePem);
    if (ca.type === 'ROOT') {
      if (!node.verify(node.publicKey)) throw new AwsError('MalformedCertificateException', 'a ROOT certificate authority needs a self-signed certificate');
    } else {
      if (!chainPem) throw invalidArgs('CertificateChain is required for a SUBORDINATE certificate authority');
      const parent = new NodeX509Certificate(chainPem.split(/(?<=-----END CERTIFICATE-----)/)[0].trim());
      if (!node.verify(parent.publicKey)) throw new AwsError('InvalidRequestException', 'the certificate is not signed by the first certificate of CertificateChain');
    }
    const at = this.now().toISOString();
    Object.assign(ca, {
      certificatePem: certificate.toString('pem'),
      chainPem: ca.type === 'ROOT' ? undefined : chainPem,
      serial: certificate.serialNumber,
      notBefore: certificate.notBefore.toISOString(),
      notAfter: certificate.notAfter.toISOString(),
      status: CaStatus.Active,
      lastStateChangeAt: at,
    });
    this.save();
  }

  /** UpdateCertificateAuthority's Status: ACTIVE ↔ DISABLED, for a CA that has its certificate. */
  updateStatus(arn: string, status: unknown): void {
    const ca = this.authority(arn);
    if (status !== CaStatus.Active && status !== CaStatus.Disabled) throw invalidArgs('Status must be ACTIVE or DISABLED');
    if (!ca.certificatePem) throw invalidState(`certificate authority ${arn} has no certificate installed`);
    if (this.statusOf(ca) === CaStatus.Expired) throw invalidState(`certificate authority ${arn} is EXPIRED`);
    ca.status = status;
    ca.lastStateChangeAt = this.now().toISOString();
    this.save();
  }

  caCertificate(arn: string): { certificatePem: string; chainPem?: string } {
    const ca = this.authority(arn);
    if (!ca.certificatePem) throw invalidState(`certificate authority ${arn} is ${ca.status}: it has no certificate yet`);
    return { certificatePem: ca.certificatePem, chainPem: ca.chainPem };
  }

  // ---- certificates -------------------------------------------------------------------------

  async issueCertificate(input: IssueInput): Promise<string> {
    const ca = this.authority(input.caArn);
    const now = this.now();
    const token = input.idempotencyToken;
    if (token !== undefined && (typeof token !== 'string' || !/^[\w-]{1,36}$/.test(token))) throw invalidArgs('IdempotencyToken must be 1 to 36 word characters');
    if (typeof token === 'string') {
      const earlier = this.state.idempotency[`${ca.arn} ${token}`];
      if (earlier && now.getTime() - earlier.at < IDEMPOTENCY_MS) return earlier.certificateArn;
    }
    const signing = signingAlgorithmOf(input.signingAlgorithm);
    requireSameFamily(ca.configuration.KeyAlgorithm, signing);
    const template = templateOf(input.templateArn);
    const csr = await this.parseCsr(input.csrPem);
    const status = this.statusOf(ca);
    // A new CA signs one thing before its certificate is installed: its own CSR, as a root.
    const selfSigning = status === CaStatus.PendingCertificate && template === Template.RootCa && csr.toString('pem').trim() === ca.csrPem.trim();
    if (status !== CaStatus.Active && !selfSigning) {
      throw invalidState(`certificate authority ${ca.arn} is ${status}${status === CaStatus.PendingCertificate ? ': it can only sign its own CSR with RootCACertificate/V1 until its certificate is imported' : ''}`);
    }
    if (template === Template.RootCa && !selfSigning) throw invalidArgs('RootCACertificate/V1 signs only the CA\'s own CSR, before its certificate is imported');
    const notBefore = notBeforeOf(input.validityNotBefore, now);
    const notAfter = notAfterOf(input.validity, now);
    if (!(notAfter.getTime() > notBefore.getTime())) throw invalidArgs('Validity ends before the certificate becomes valid');
    if (notAfter.getTime() <= now.getTime()) throw invalidArgs('Validity ends in the past');
    if (!selfSigning && ca.notAfter && notAfter.getTime() > new Date(ca.notAfter).getTime()) {
      throw invalidArgs(`Validity ends after the CA certificate does (${ca.notAfter})`);
    }
    if (ca.usageMode === 'SHORT_LIVED_CERTIFICATE' && notAfter.getTime() - now.getTime() > SHORT_LIVED_MAX_MS) {
      throw invalidArgs('a SHORT_LIVED_CERTIFICATE certificate authority issues certificates valid for 7 days at most');
    }

    const signingKey = await this.signingKey(ca, signing);
    const issuer = selfSigning ? csr.subjectName : new X509Certificate(ca.certificatePem as string).subjectName;
    const issuerKey = selfSigning ? csr.publicKey : new X509Certificate(ca.certificatePem as string).publicKey;
    // EndEntity templates pass the CSR's subject alternative names through.
    const passthrough: Extension[] = isCaTemplate(template) ? [] : csr.extensions.filter((e) => e.type === '2.5.29.17');
    const serial = serialNumber();
    const certificate = await X509CertificateGenerator.create({
      serialNumber: serial,
      subject: csr.subjectName,
      issuer,
      notBefore,
      notAfter,
      signingAlgorithm: webSigningAlgorithm(ca.configuration.KeyAlgorithm, signing),
      publicKey: csr.publicKey,
      signingKey,
      extensions: [
        ...templateExtensions(template),
        ...passthrough,
        await SubjectKeyIdentifierExtension.create(csr.publicKey),
        await AuthorityKeyIdentifierExtension.create(issuerKey),
      ],
    });
    const certificateArn = `${ca.arn}/certificate/${serial}`;
    this.state.issued[certificateArn] = {
      certificateArn,
      caArn: ca.arn,
      certificatePem: certificate.toString('pem'),
      chainPem: selfSigning ? undefined : [ca.certificatePem, ca.chainPem].filter(Boolean).map((p) => (p as string).trim()).join('\n'),
      availableAt: now.getTime() + this.issueLatencyMs,
    };
    if (typeof token === 'string') this.state.idempotency[`${ca.arn} ${token}`] = { certificateArn, at: now.getTime() };
    this.save();
    return certificateArn;
  }

  getCertificate(caArn: string, certificateArn: string): { certificatePem: string; chainPem?: string } {
    this.authority(caArn);
    if (typeof certificateArn !== 'string' || !certificateArn.startsWith(`${caArn}/certificate/`)) {
      throw new AwsError('InvalidArnException', `CertificateArn ${JSON.stringify(certificateArn)} is not a certificate of ${caArn}`);
    }
    const issued = this.state.issued[certificateArn];
    if (!issued) throw notFound(`certificate ${certificateArn} does not exist`);
    if (this.now().getTime() < issued.availableAt) throw new AwsError('RequestInProgressException', `certificate ${certificateArn} is still being issued`);
    return { certificatePem: issued.certificatePem, chainPem: issued.chainPem };
  }

  // ---- internals ----------------------------------------------------------------------------

  private authority(arn: unknown): CaRecord {
    if (typeof arn !== 'string' || !CA_ARN.test(arn)) throw new AwsError('InvalidArnException', `CertificateAuthorityArn ${JSON.stringify(arn)} is not a certificate authority ARN`);
    const ca = this.state.authorities[arn];
    if (!ca) throw notFound(`certificate authority ${arn} does not exist`);
    return ca;
  }

  private statusOf(ca: CaRecord): CaStatus {
    if (ca.status === CaStatus.Active && ca.notAfter && new Date(ca.notAfter).getTime() <= this.now().getTime()) return CaStatus.Expired;
    return ca.status;
  }

  private async parseCsr(csrPem: string): Promise<Pkcs10CertificateRequest> {
    if (typeof csrPem !== 'string' || !pemToDer(csrPem.trim(), 'CERTIFICATE REQUEST')) throw new AwsError('MalformedCSRException', 'Csr is not a PEM "CERTIFICATE REQUEST"');
    let csr: Pkcs10CertificateRequest;
    try {
      csr = new Pkcs10CertificateRequest(csrPem.trim());
    } catch {
      throw new AwsError('MalformedCSRException', 'Csr is not a valid PKCS#10 request');
    }
    let verified = false;
    try {
      verified = await csr.verify();
    } catch {
      verified = false;
    }
    if (!verified) throw new AwsError('MalformedCSRException', 'the signature of the CSR does not verify');
    const hasSan = csr.extensions.some((e) => e.type === '2.5.29.17');
    if (!csr.subject && !hasSan) throw new AwsError('MalformedCSRException', 'the CSR has neither a subject name nor a subject alternative name');
    return csr;
  }

  private signingKey(ca: CaRecord, signing: LocalSigningAlgorithm): Promise<webcrypto.CryptoKey> {
    const key = `${ca.arn} ${signing}`;
    let pending = this.signingKeys.get(key);
    if (!pending) {
      pending = importSigningKey(ca.privateKeyPem, ca.configuration.KeyAlgorithm, signing);
      this.signingKeys.set(key, pending);
    }
    return pending;
  }

  private load(): PcaState {
    const empty: PcaState = { authorities: {}, issued: {}, idempotency: {} };
    if (!this.dataDir) return empty;
    const file = join(this.dataDir, STATE_FILE);
    if (!existsSync(file)) return empty;
    return { ...empty, ...(JSON.parse(readFileSync(file, 'utf8')) as Partial<PcaState>) };
  }

  private save(): void {
    if (!this.dataDir) return;
    mkdirSync(this.dataDir, { recursive: true });
    const file = join(this.dataDir, STATE_FILE);
    const cutoff = this.now().getTime() - IDEMPOTENCY_MS;
    for (const [key, entry] of Object.entries(this.state.idempotency)) if (entry.at < cutoff) delete this.state.idempotency[key];
    // Write-then-rename; 0600: the file holds the CAs' private keys.
    writeFileSync(`${file}.tmp`, JSON.stringify(this.state, null, 2), { mode: 0o600 });
    renameSync(`${file}.tmp`, file);
  }
}
