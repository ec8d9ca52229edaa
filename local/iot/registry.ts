import { randomBytes, randomUUID, X509Certificate as NodeX509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { TOPIC_ROOT } from '../../domain/topics.js';
import { AwsError, LOCAL_ACCOUNT, LOCAL_REGION } from '../types.js';
import { AWS_DEFAULT_NOT_AFTER, certificateIdOf, type LocalCa, type Validity } from './ca.js';

/** Certificate statuses as the IoT API names them. */

/**
 * Which client ids a certificate may connect with. 'thing-name' is Rotor's device policy
 * (iot:Connect on client/${iot:Connection.Thing.ThingName}); 'any' is a fleet policy that allows
 * client/* — a local-only setting for tests of what Rotor must withstand (issue 9, scenario 3).
 */
export type ClientIdPolicy = 'thing-name' | 'any';
export const CertificateStatus = {
  Active: 'ACTIVE',
  Inactive: 'INACTIVE',
  Revoked: 'REVOKED',
  PendingTransfer: 'PENDING_TRANSFER',
  RegisterInactive: 'REGISTER_INACTIVE',
  PendingActivation: 'PENDING_ACTIVATION',
} as const;
export type CertificateStatus = (typeof CertificateStatus)[keyof typeof CertificateStatus];
const ALL_STATUSES: readonly string[] = Object.values(CertificateStatus);

export interface CertificateRecord {
  certificateId: string;
  certificateArn: string;
  certificatePem: string;
  status: CertificateStatus;
  /** ISO timestamps (the record is persisted as JSON). */
  creationDate: string;
  lastModifiedDate: string;
  notBefore: string;
  notAfter: string;
  /** The registered CA (or the local CA) that signed it; absent for RegisterCertificateWithoutCA. */
  caCertificateId?: string;
  generationId: string;
  /** SNI_ONLY for RegisterCertificateWithoutCA and certificates of an SNI_ONLY CA; DEFAULT otherwise. */
  certificateMode?: CertificateMode;
}

/** How IoT authenticates a certificate: DEFAULT (its CA is registered and verified) or SNI_ONLY. */
export type CertificateMode = 'DEFAULT' | 'SNI_ONLY';

export const CaCertificateStatus = { Active: 'ACTIVE', Inactive: 'INACTIVE' } as const;
export type CaCertificateStatus = (typeof CaCertificateStatus)[keyof typeof CaCertificateStatus];

/** A CA certificate registered with RegisterCACertificate. */
export interface CaCertificateRecord {
  certificateId: string;
  certificateArn: string;
  certificatePem: string;
  status: CaCertificateStatus;
  certificateMode: CertificateMode;
  autoRegistrationStatus: 'ENABLE' | 'DISABLE';
  /** ISO timestamps. */
  creationDate: string;
  lastModifiedDate: string;
  notBefore: string;
  notAfter: string;
  customerVersion: number;
  generationId: string;
  registrationConfig?: Record<string, string>;
}

export interface RegisterCaInput {
  caCertificatePem: string;
  verificationCertificatePem?: string;
  setAsActive?: boolean;
  allowAutoRegistration?: boolean;
  certificateMode?: string;
  registrationConfig?: Record<string, string>;
}

export interface ThingRecord {
  thingName: string;
  thingId: string;
  thingArn: string;
  attributes: Record<string, string>;
  version: number;
  creationDate: string;
}

export interface PolicyRecord {
  policyName: string;
  policyArn: string;
  policyDocument: string;
  creationDate: string;
  lastModifiedDate: string;
  generationId: string;
}

/** The registry as persisted (iot-registry.json). */
interface PersistedState {
  certificates: Record<string, CertificateRecord>;
  things: Record<string, ThingRecord>;
  policies: Record<string, PolicyRecord>;
  /** policy name → target ARNs */
  policyTargets: Record<string, string[]>;
  /** thing name → principal ARNs */
  thingPrincipals: Record<string, string[]>;
  /** RegisterCACertificate's CAs, by certificate id. */
  caCertificates: Record<string, CaCertificateRecord>;
  /** GetRegistrationCode's code (one per account until DeleteRegistrationCode). */
  registrationCode?: string;
}

/**
 * The registry in memory: the attachments as insertion-ordered sets (the List APIs answer in
 * attach order), each with its reverse index, so that every attach, detach and lookup the
 * rotations and the broker make is O(1) instead of a scan of the fleet.
 */
interface RegistryState extends Omit<PersistedState, 'policyTargets' | 'thingPrincipals'> {
  policyTargets: Links;
  thingPrincipals: Links;
}

/** A many-to-many relation kept from both ends: owner (policy, thing) → members (ARNs), and back. */
class Links {
  private readonly forward = new Map<string, Set<string>>();
  private readonly backward = new Map<string, Set<string>>();

  static from(record: Record<string, string[]>): Links {
    const links = new Links();
    for (const [owner, members] of Object.entries(record)) {
      links.forward.set(owner, new Set());
      for (const member of members) links.add(owner, member);
    }
    return links;
  }

  add(owner: string, member: string): void {
    let members = this.forward.get(owner);
    if (!members) this.forward.set(owner, (members = new Set()));
    members.add(member);
    let owners = this.backward.get(member);
    if (!owners) this.backward.set(member, (owners = new Set()));
    owners.add(owner);
  }

  remove(owner: string, member: string): void {
    this.forward.get(owner)?.delete(member);
    const owners = this.backward.get(member);
    owners?.delete(owner);
    if (owners?.size === 0) this.backward.delete(member);
  }

  /** Forgets the owner (it has no members left). */
  drop(owner: string): void {
    for (const member of this.forward.get(owner) ?? []) this.remove(owner, member);
    this.forward.delete(owner);
  }

  has(owner: string, member: string): boolean {
    return this.forward.get(owner)?.has(member) ?? false;
  }

  /** The owner's members, in the order they were added. */
  membersOf(owner: string): string[] {
    return [...(this.forward.get(owner) ?? [])];
  }

  countOf(owner: string): number {
    return this.forward.get(owner)?.size ?? 0;
  }

  /** The member's owners, sorted. */
  ownersOf(member: string): string[] {
    return [...(this.backward.get(member) ?? [])].sort();
  }

  hasOwners(member: string): boolean {
    return (this.backward.get(member)?.size ?? 0) > 0;
  }

  toJSON(): Record<string, string[]> {
    return Object.fromEntries([...this.forward].map(([owner, members]) => [owner, [...members]]));
  }
}

export interface RegistryOptions {
  ca: LocalCa;
  region?: string;
  account?: string;
  now?: () => Date;
  /** When set, the registry is kept as JSON in this directory and reloaded from it. */
  dataDir?: string;
  /**
   * Validity of certificates made through the API; AWS's end at 2049-12-31. A number of
   * days lets a demo issue certificates that themselves become due for rotation.
   */
  issuedValidityDays?: number;
}

export interface ProvisionDeviceInput {
  thingName: string;
  policyName: string;
  /** Created with a device policy allowing only the thing's own topics when missing. */
  policyDocument?: string;
  /** notAfter this many days from now (may be negative: already expired). Default: AWS's 2049-12-31. */
  expiresInDays?: number;
  /** creationDate (and notBefore) this many days ago, for the age check. */
  createdDaysAgo?: number;
  /** Sign this CSR instead of generating a key pair here. */
  csrPem?: string;
}

export interface ProvisionedDevice {
  thingName: string;
  certificateId: string;
  certificateArn: string;
  certificatePem: string;
  /** Absent when the caller supplied its own CSR. */
  privateKeyPem?: string;
  caPem: string;
}

/** The registered CAs changed (the broker's TLS trust follows them). */
export type CaListener = () => void;

/** Why a certificate stops being usable (the broker drops its sessions). */
export type RetirementListener = (certificateId: string, reason: 'status' | 'deleted') => void;

const DAY_MS = 86_400_000;
const REGISTRY_FILE = 'iot-registry.json';
const CERTIFICATE_ARN = /^arn:aws[a-z-]*:iot:[^:]*:[^:]*:cert\/([0-9a-f]{64})$/;
const THING_NAME = /^[a-zA-Z0-9:_-]{1,128}$/;
const POLICY_NAME = /^[\w+=,.@-]{1,128}$/;

function emptyState(): RegistryState {
  return { certificates: {}, things: {}, policies: {}, policyTargets: new Links(), thingPrincipals: new Links(), caCertificates: {} };
}

function notFound(message: string): AwsError {
  return new AwsError('ResourceNotFoundException', message, 404);
}

function invalid(message: string): AwsError {
  return new AwsError('InvalidRequestException', message, 400);
}

function certificateInvalid(message: string): AwsError {
  return new AwsError('CertificateValidationException', message, 400);
}

function parseCertificate(pem: unknown, name: string): NodeX509Certificate {
  if (typeof pem !== 'string' || !pem.includes('-----BEGIN CERTIFICATE-----')) throw certificateInvalid(`${name} is not a PEM "CERTIFICATE" block`);
  try {
    return new NodeX509Certificate(pem);
  } catch {
    throw certificateInvalid(`${name} is not a valid X.509 certificate`);
  }
}

/** The subject's common name (node writes the subject one attribute a line). */
function commonNameOf(certificate: NodeX509Certificate): string | undefined {
  return certificate.subject.split('\n').find((line) => line.startsWith('CN='))?.slice(3);
}

/**
 * The IoT registry: certificates, things, policies and what is attached to what. All state
 * changes go through here so that the API, the broker and the audit see one truth.
 */
export class IotRegistry {
  readonly ca: LocalCa;
  readonly region: string;
  readonly account: string;
  private readonly now: () => Date;
  private readonly dataDir?: string;
  private readonly issuedValidityDays?: number;
  private state: RegistryState;
  private readonly retirementListeners = new Set<RetirementListener>();
  private readonly caListeners = new Set<CaListener>();

  constructor(options: RegistryOptions) {
    this.ca = options.ca;
    this.region = options.region ?? LOCAL_REGION;
    this.account = options.account ?? LOCAL_ACCOUNT;
    this.now = options.now ?? (() => new Date());
    this.dataDir = options.dataDir;
    this.issuedValidityDays = options.issuedValidityDays;
    this.state = this.load();
  }

  // ---- ARNs ----------------------------------------------------------------------------

  certificateArn(certificateId: string): string {
    return `arn:aws:iot:${this.region}:${this.account}:cert/${certificateId}`;
  }

  thingArn(thingName: string): string {
    return `arn:aws:iot:${this.region}:${this.account}:thing/${thingName}`;
  }

  policyArn(policyName: string): string {
    return `arn:aws:iot:${this.region}:${this.account}:policy/${policyName}`;
  }

  /** The certificate id in a certificate ARN; undefined for any other principal. */
  static certificateIdOfArn(arn: string): string | undefined {
    return CERTIFICATE_ARN.exec(arn)?.[1];
  }

  onRetired(listener: RetirementListener): () => void {
    this.retirementListeners.add(listener);
    return () => this.retirementListeners.delete(listener);
  }

  // ---- certificates --------------------------------------------------------------------

  /** The validity the API gives a new certificate. */
  defaultValidity(): Validity {
    const now = this.now();
    const notAfter = this.issuedValidityDays === undefined ? AWS_DEFAULT_NOT_AFTER : new Date(now.getTime() + this.issuedValidityDays * DAY_MS);
    // Back-dated a minute so a device whose clock runs slightly behind accepts it at once.
    return { notBefore: new Date(now.getTime() - 60_000), notAfter };
  }

  async createCertificateFromCsr(csrPem: string, setAsActive: boolean, validity: Validity = this.defaultValidity()): Promise<CertificateRecord> {
    const issued = await this.ca.signCsr(csrPem, validity);
    return this.addCertificate(issued.certificatePem, issued.certificateId, validity, setAsActive);
  }

  async createKeysAndCertificate(setAsActive: boolean): Promise<CertificateRecord & { privateKeyPem: string; publicKeyPem: string }> {
    const validity = this.defaultValidity();
    const issued = await this.ca.createKeyAndCertificate(validity);
    const record = this.addCertificate(issued.certificatePem, issued.certificateId, validity, setAsActive);
    return { ...record, privateKeyPem: issued.privateKeyPem, publicKeyPem: issued.publicKeyPem };
  }

  private addCertificate(
    certificatePem: string,
    certificateId: string,
    validity: Validity,
    setAsActive: boolean,
    creationDate = this.now(),
    origin: { caCertificateId?: string; certificateMode: CertificateMode; status?: CertificateStatus } = { caCertificateId: this.ca.certificateId, certificateMode: 'DEFAULT' },
  ): CertificateRecord {
    if (this.state.certificates[certificateId]) {
      throw new AwsError('ResourceAlreadyExistsException', `certificate ${certificateId} already exists`, 409);
    }
    const at = creationDate.toISOString();
    const record: CertificateRecord = {
      certificateId,
      certificateArn: this.certificateArn(certificateId),
      certificatePem,
      status: origin.status ?? (setAsActive ? CertificateStatus.Active : CertificateStatus.Inactive),
      creationDate: at,
      lastModifiedDate: at,
      notBefore: validity.notBefore.toISOString(),
      notAfter: validity.notAfter.toISOString(),
      caCertificateId: origin.caCertificateId,
      generationId: randomUUID(),
      certificateMode: origin.certificateMode,
    };
    this.state.certificates[certificateId] = record;
    this.save();
    return { ...record };
  }

  describeCertificate(certificateId: string): CertificateRecord {
    const record = this.state.certificates[certificateId];
    if (!record) throw notFound(`certificate ${certificateId} does not exist`);
    return { ...record };
  }

  findCertificate(certificateId: string): CertificateRecord | undefined {
    const record = this.state.certificates[certificateId];
    return record ? { ...record } : undefined;
  }

  listCertificates(ascending = false): CertificateRecord[] {
    const list = Object.values(this.state.certificates).map((c) => ({ ...c }));
    list.sort((a, b) => a.creationDate.localeCompare(b.creationDate) || a.certificateId.localeCompare(b.certificateId));
    return ascending ? list : list.reverse();
  }

  updateCertificate(certificateId: string, newStatus: string): void {
    const record = this.state.certificates[certificateId];
    if (!record) throw notFound(`certificate ${certificateId} does not exist`);
    if (!ALL_STATUSES.includes(newStatus)) throw invalid(`newStatus ${JSON.stringify(newStatus)} is not a certificate status`);
    if (newStatus === CertificateStatus.PendingTransfer || newStatus === CertificateStatus.RegisterInactive || newStatus === CertificateStatus.PendingActivation) {
      throw invalid(`a certificate cannot be set to ${newStatus} with UpdateCertificate`);
    }
    if (record.status === CertificateStatus.Revoked && newStatus !== CertificateStatus.Revoked) {
      throw new AwsError('CertificateStateException', `certificate ${certificateId} is REVOKED and cannot become ${newStatus}`, 406);
    }
    if (record.status === CertificateStatus.PendingTransfer) {
      throw new AwsError('CertificateStateException', `certificate ${certificateId} is PENDING_TRANSFER`, 406);
    }
    const wasActive = record.status === CertificateStatus.Active;
    record.status = newStatus as CertificateStatus;
    record.lastModifiedDate = this.now().toISOString();
    this.save();
    if (wasActive && newStatus !== CertificateStatus.Active) this.notifyRetired(certificateId, 'status');
  }

  /** AWS: never while ACTIVE; never with things attached; with policies attached only when forced. */
  deleteCertificate(certificateId: string, forceDelete = false): void {
    const record = this.state.certificates[certificateId];
    if (!record) throw notFound(`certificate ${certificateId} does not exist`);
    if (record.status === CertificateStatus.Active) {
      throw new AwsError('CertificateStateException', `certificate ${certificateId} is ACTIVE; deactivate it before deleting it`, 406);
    }
    const arn = record.certificateArn;
    const things = this.principalThings(arn);
    if (things.length > 0) {
      throw new AwsError('DeleteConflictException', `certificate ${certificateId} is attached to thing(s) ${things.join(', ')}`, 409);
    }
    const policies = this.attachedPolicies(arn);
    if (policies.length > 0 && !forceDelete) {
      throw new AwsError('DeleteConflictException', `certificate ${certificateId} has policies attached: ${policies.join(', ')}`, 409);
    }
    for (const policy of policies) this.removeTarget(policy, arn);
    delete this.state.certificates[certificateId];
    this.save();
    this.notifyRetired(certificateId, 'deleted');
  }

  /** Test and demo hook: pretend the certificate was created at another time (the age check reads it). */
  setCreationDate(certificateId: string, creationDate: Date): void {
    const record = this.state.certificates[certificateId];
    if (!record) throw notFound(`certificate ${certificateId} does not exist`);
    record.creationDate = creationDate.toISOString();
    this.save();
  }

  // ---- things --------------------------------------------------------------------------

  createThing(thingName: string, attributes: Record<string, string> = {}): ThingRecord {
    if (!THING_NAME.test(thingName)) throw invalid(`thingName ${JSON.stringify(thingName)} must match [a-zA-Z0-9:_-]{1,128}`);
    const existing = this.state.things[thingName];
    if (existing) {
      // AWS answers a repeated CreateThing with the same attributes with the existing thing.
      if (JSON.stringify(existing.attributes) === JSON.stringify(attributes)) return { ...existing };
      throw new AwsError('ResourceAlreadyExistsException', `thing ${thingName} already exists with different attributes`, 409);
    }
    const record: ThingRecord = {
      thingName,
      thingId: randomUUID(),
      thingArn: this.thingArn(thingName),
      attributes: { ...attributes },
      version: 1,
      creationDate: this.now().toISOString(),
    };
    this.state.things[thingName] = record;
    this.save();
    return { ...record };
  }

  describeThing(thingName: string): ThingRecord {
    const record = this.state.things[thingName];
    if (!record) throw notFound(`thing ${thingName} does not exist`);
    return { ...record, attributes: { ...record.attributes } };
  }

  listThings(): ThingRecord[] {
    return Object.values(this.state.things)
      .map((t) => ({ ...t }))
      .sort((a, b) => a.thingName.localeCompare(b.thingName));
  }

  /** AWS succeeds for a thing that does not exist; a thing with principals attached is refused. */
  deleteThing(thingName: string, expectedVersion?: number): void {
    const record = this.state.things[thingName];
    if (!record) return;
    if (expectedVersion !== undefined && expectedVersion !== record.version) {
      throw new AwsError('VersionConflictException', `thing ${thingName} is at version ${record.version}, not ${expectedVersion}`, 409);
    }
    if (this.state.thingPrincipals.countOf(thingName) > 0) throw invalid(`thing ${thingName} still has principals attached; detach them first`);
    delete this.state.things[thingName];
    this.state.thingPrincipals.drop(thingName);
    this.save();
  }

  attachThingPrincipal(thingName: string, principal: string): void {
    if (!this.state.things[thingName]) throw notFound(`thing ${thingName} does not exist`);
    this.requireCertificatePrincipal(principal);
    this.state.thingPrincipals.add(thingName, principal);
    this.save();
  }

  detachThingPrincipal(thingName: string, principal: string): void {
    if (!this.state.things[thingName]) throw notFound(`thing ${thingName} does not exist`);
    if (!principal) throw invalid('principal (x-amzn-principal) is required');
    // AWS answers a detach of a principal that is not attached with success.
    this.state.thingPrincipals.remove(thingName, principal);
    this.save();
  }

  thingPrincipals(thingName: string): string[] {
    if (!this.state.things[thingName]) throw notFound(`thing ${thingName} does not exist`);
    return this.state.thingPrincipals.membersOf(thingName);
  }

  principalThings(principal: string): string[] {
    return this.state.thingPrincipals.ownersOf(principal);
  }

  /** The certificates attached to a thing, with their records (for the runtime and demo). */
  certificatesOf(thingName: string): CertificateRecord[] {
    return this.thingPrincipals(thingName)
      .map((arn) => IotRegistry.certificateIdOfArn(arn))
      .flatMap((id) => (id && this.state.certificates[id] ? [{ ...this.state.certificates[id] }] : []));
  }

  // ---- policies ------------------------------------------------------------------------

  createPolicy(policyName: string, policyDocument: string): PolicyRecord {
    if (!POLICY_NAME.test(policyName)) throw invalid(`policyName ${JSON.stringify(policyName)} is not a valid policy name`);
    if (this.state.policies[policyName]) {
      throw new AwsError('ResourceAlreadyExistsException', `policy ${policyName} already exists`, 409);
    }
    if (typeof policyDocument !== 'string') throw invalid('policyDocument is required');
    try {
      const parsed: unknown = JSON.parse(policyDocument);
      if (typeof parsed !== 'object' || parsed === null || !('Statement' in parsed)) throw new Error('no Statement');
    } catch (error) {
      throw new AwsError('MalformedPolicyException', `policyDocument is not a policy: ${(error as Error).message}`, 400);
    }
    const at = this.now().toISOString();
    const record: PolicyRecord = { policyName, policyArn: this.policyArn(policyName), policyDocument, creationDate: at, lastModifiedDate: at, generationId: randomUUID() };
    this.state.policies[policyName] = record;
    this.save();
    return { ...record };
  }

  getPolicy(policyName: string): PolicyRecord {
    const record = this.state.policies[policyName];
    if (!record) throw notFound(`policy ${policyName} does not exist`);
    return { ...record };
  }

  listPolicies(ascending = false): PolicyRecord[] {
    const list = Object.values(this.state.policies).map((p) => ({ ...p }));
    list.sort((a, b) => a.policyName.localeCompare(b.policyName));
    return ascending ? list : list.reverse();
  }

  attachPolicy(policyName: string, target: string): void {
    if (!this.state.policies[policyName]) throw notFound(`policy ${policyName} does not exist`);
    this.requireCertificatePrincipal(target);
    this.state.policyTargets.add(policyName, target);
    this.save();
  }

  detachPolicy(policyName: string, target: string): void {
    if (!this.state.policies[policyName]) throw notFound(`policy ${policyName} does not exist`);
    if (!target) throw invalid('target is required');
    this.removeTarget(policyName, target);
    this.save();
  }

  attachedPolicies(target: string): string[] {
    return this.state.policyTargets.ownersOf(target);
  }

  targetsForPolicy(policyName: string): string[] {
    if (!this.state.policies[policyName]) throw notFound(`policy ${policyName} does not exist`);
    return this.state.policyTargets.membersOf(policyName);
  }

  private removeTarget(policyName: string, target: string): void {
    this.state.policyTargets.remove(policyName, target);
  }

  /** Only certificate principals exist locally; any other ARN is refused, never ignored. */
  private requireCertificatePrincipal(principal: string): string {
    if (!principal) throw invalid('a principal/target ARN is required');
    const id = IotRegistry.certificateIdOfArn(principal);
    if (!id) throw invalid(`${principal} is not a certificate ARN (arn:aws:iot:REGION:ACCOUNT:cert/ID); the local registry supports certificate principals only`);
    if (!this.state.certificates[id]) throw notFound(`certificate ${id} does not exist`);
    return id;
  }

  // ---- CA certificates (RegisterCACertificate and the certificates registered under them) ----

  caCertificateArn(certificateId: string): string {
    return `arn:aws:iot:${this.region}:${this.account}:cacert/${certificateId}`;
  }

  onCaChange(listener: CaListener): () => void {
    this.caListeners.add(listener);
    return () => this.caListeners.delete(listener);
  }

  /** GetRegistrationCode: the code a DEFAULT-mode CA's verification certificate must carry as its common name. */
  registrationCode(): string {
    if (!this.state.registrationCode) {
      this.state.registrationCode = randomBytes(32).toString('hex');
      this.save();
    }
    return this.state.registrationCode;
  }

  /** DeleteRegistrationCode: the next GetRegistrationCode answers a new one. */
  deleteRegistrationCode(): void {
    delete this.state.registrationCode;
    this.save();
  }

  /**
   * RegisterCACertificate. The certificate must be a CA certificate in its validity period. In
   * DEFAULT mode AWS asks for proof that the registrant holds the CA's key: a verification
   * certificate signed by it whose common name is the account's registration code. SNI_ONLY
   * mode needs no verification certificate.
   */
  registerCaCertificate(input: RegisterCaInput): CaCertificateRecord {
    const mode = input.certificateMode ?? 'DEFAULT';
    if (mode !== 'DEFAULT' && mode !== 'SNI_ONLY') throw invalid(`certificateMode ${JSON.stringify(mode)} must be DEFAULT or SNI_ONLY`);
    const ca = parseCertificate(input.caCertificatePem, 'caCertificate');
    if (!ca.ca) throw certificateInvalid('caCertificate is not a CA certificate (basic constraints CA:TRUE)');
    this.requireWithinValidity(ca, 'caCertificate');
    if (mode === 'DEFAULT') {
      if (!input.verificationCertificatePem) throw certificateInvalid('verificationCertificate is required to register a CA certificate in DEFAULT mode');
      const verification = parseCertificate(input.verificationCertificatePem, 'verificationCertificate');
      if (!verification.verify(ca.publicKey)) throw certificateInvalid('verificationCertificate is not signed by the CA certificate\'s key');
      this.requireWithinValidity(verification, 'verificationCertificate');
      if (commonNameOf(verification) !== this.registrationCode()) {
        throw certificateInvalid('the common name of verificationCertificate is not the registration code (GetRegistrationCode)');
      }
    } else if (input.verificationCertificatePem) {
      throw invalid('a CA certificate in SNI_ONLY mode is registered without a verificationCertificate');
    }
    const certificateId = certificateIdOf(input.caCertificatePem);
    if (this.state.caCertificates[certificateId]) {
      throw new AwsError('ResourceAlreadyExistsException', `CA certificate ${certificateId} is already registered`, 409);
    }
    const at = this.now().toISOString();
    const record: CaCertificateRecord = {
      certificateId,
      certificateArn: this.caCertificateArn(certificateId),
      certificatePem: ca.toString(),
      status: input.setAsActive ? CaCertificateStatus.Active : CaCertificateStatus.Inactive,
      certificateMode: mode,
      autoRegistrationStatus: input.allowAutoRegistration ? 'ENABLE' : 'DISABLE',
      creationDate: at,
      lastModifiedDate: at,
      notBefore: new Date(ca.validFrom).toISOString(),
      notAfter: new Date(ca.validTo).toISOString(),
      customerVersion: 1,
      generationId: randomUUID(),
      registrationConfig: input.registrationConfig,
    };
    this.state.caCertificates[certificateId] = record;
    this.save();
    this.notifyCaChange();
    return { ...record };
  }

  describeCaCertificate(certificateId: string): CaCertificateRecord {
    const record = this.state.caCertificates[certificateId];
    if (!record) throw notFound(`CA certificate ${certificateId} does not exist`);
    return { ...record };
  }

  listCaCertificates(ascending = false): CaCertificateRecord[] {
    const list = Object.values(this.state.caCertificates).map((c) => ({ ...c }));
    list.sort((a, b) => a.creationDate.localeCompare(b.creationDate) || a.certificateId.localeCompare(b.certificateId));
    return ascending ? list : list.reverse();
  }

  /**
   * UpdateCACertificate. An INACTIVE CA's device certificates can no longer connect (the
   * broker's assumption about AWS, local/README.md), so their live sessions are dropped.
   */
  updateCaCertificate(certificateId: string, update: { newStatus?: string; newAutoRegistrationStatus?: string; registrationConfig?: Record<string, string>; removeAutoRegistration?: boolean }): void {
    const record = this.state.caCertificates[certificateId];
    if (!record) throw notFound(`CA certificate ${certificateId} does not exist`);
    const { newStatus, newAutoRegistrationStatus } = update;
    if (newStatus !== undefined && newStatus !== CaCertificateStatus.Active && newStatus !== CaCertificateStatus.Inactive) {
      throw invalid(`newStatus ${JSON.stringify(newStatus)} must be ACTIVE or INACTIVE`);
    }
    if (newAutoRegistrationStatus !== undefined && newAutoRegistrationStatus !== 'ENABLE' && newAutoRegistrationStatus !== 'DISABLE') {
      throw invalid(`newAutoRegistrationStatus ${JSON.stringify(newAutoRegistrationStatus)} must be ENABLE or DISABLE`);
    }
    const deactivated = record.status === CaCertificateStatus.Active && newStatus === CaCertificateStatus.Inactive;
    if (newStatus) record.status = newStatus;
    if (newAutoRegistrationStatus) record.autoRegistrationStatus = newAutoRegistrationStatus;
    if (update.registrationConfig) record.registrationConfig = update.registrationConfig;
    if (update.removeAutoRegistration) delete record.registrationConfig;
    record.lastModifiedDate = this.now().toISOString();
    record.customerVersion += 1;
    this.save();
    this.notifyCaChange();
    if (deactivated) for (const c of this.certificatesByCa(certificateId)) if (c.status === CertificateStatus.Active) this.notifyRetired(c.certificateId, 'status');
  }

  /** ListCertificatesByCA: the device certificates registered under the CA. */
  certificatesByCa(caCertificateId: string, ascending = false): CertificateRecord[] {
    if (!this.state.caCertificates[caCertificateId]) throw notFound(`CA certificate ${caCertificateId} does not exist`);
    return this.listCertificates(ascending).filter((c) => c.caCertificateId === caCertificateId);
  }

  /**
   * RegisterCertificate: a device certificate signed by a registered CA (the one named by
   * caCertificatePem, or the registered CA whose key verifies it), in that CA's mode. AWS
   * refuses one whose CA is not registered, or is INACTIVE (CertificateStateException).
   */
  registerCertificate(input: { certificatePem: string; caCertificatePem?: string; setAsActive?: boolean; status?: string }): CertificateRecord {
    const certificate = parseCertificate(input.certificatePem, 'certificatePem');
    let ca: CaCertificateRecord | undefined;
    if (input.caCertificatePem) {
      ca = this.state.caCertificates[certificateIdOf(input.caCertificatePem)];
      if (!ca) throw certificateInvalid('caCertificatePem is not a registered CA certificate');
      if (!certificate.verify(new NodeX509Certificate(ca.certificatePem).publicKey)) throw certificateInvalid('the certificate is not signed by caCertificatePem');
    } else {
      ca = Object.values(this.state.caCertificates).find((c) => certificate.checkIssued(new NodeX509Certificate(c.certificatePem)) && certificate.verify(new NodeX509Certificate(c.certificatePem).publicKey));
      if (!ca) throw certificateInvalid('the certificate is not signed by a registered CA certificate');
    }
    if (ca.status !== CaCertificateStatus.Active) throw new AwsError('CertificateStateException', `CA certificate ${ca.certificateId} is ${ca.status}`, 406);
    return this.addRegistered(certificate, input.certificatePem, this.registeredStatus(input.status, input.setAsActive), { caCertificateId: ca.certificateId, certificateMode: ca.certificateMode });
  }

  /** RegisterCertificateWithoutCA: any certificate, SNI_ONLY, with no CA. */
  registerCertificateWithoutCa(input: { certificatePem: string; status?: string }): CertificateRecord {
    const certificate = parseCertificate(input.certificatePem, 'certificatePem');
    return this.addRegistered(certificate, input.certificatePem, this.registeredStatus(input.status, undefined), { certificateMode: 'SNI_ONLY' });
  }

  /** The registered CA certificates (any status) the broker's TLS layer chains device certificates to. */
  registeredCaPems(): string[] {
    return Object.values(this.state.caCertificates).map((c) => c.certificatePem);
  }

  private registeredStatus(status: string | undefined, setAsActive: boolean | undefined): CertificateStatus {
    if (status === undefined) return setAsActive ? CertificateStatus.Active : CertificateStatus.Inactive;
    if (status !== CertificateStatus.Active && status !== CertificateStatus.Inactive && status !== CertificateStatus.Revoked) {
      throw invalid(`status ${JSON.stringify(status)} must be ACTIVE, INACTIVE or REVOKED`);
    }
    return status;
  }

  private addRegistered(certificate: NodeX509Certificate, pem: string, status: CertificateStatus, origin: { caCertificateId?: string; certificateMode: CertificateMode }): CertificateRecord {
    if (certificate.ca) throw certificateInvalid('a CA certificate is registered with RegisterCACertificate, not as a device certificate');
    this.requireWithinValidity(certificate, 'certificatePem');
    const validity = { notBefore: new Date(certificate.validFrom), notAfter: new Date(certificate.validTo) };
    return this.addCertificate(certificate.toString(), certificateIdOf(pem), validity, false, this.now(), { ...origin, status });
  }

  private requireWithinValidity(certificate: NodeX509Certificate, name: string): void {
    const now = this.now().getTime();
    if (new Date(certificate.validTo).getTime() <= now) throw certificateInvalid(`${name} has expired`);
    if (new Date(certificate.validFrom).getTime() > now) throw certificateInvalid(`${name} is not valid yet`);
  }

  private notifyCaChange(): void {
    for (const listener of this.caListeners) listener();
  }

  // ---- the broker's question -----------------------------------------------------------

  /**
   * May a connection authenticated with this certificate use this client id? As AWS with the
   * device policy Rotor deploys: the certificate is ACTIVE, has a policy, and is attached to
   * the thing whose name is the client id. Returns the reason when not.
   */
  connectRefusal(certificateId: string, clientId: string, clientIdPolicy: ClientIdPolicy = 'thing-name'): string | undefined {
    const record = this.state.certificates[certificateId];
    if (!record) return `certificate ${certificateId} is not registered`;
    if (record.status !== CertificateStatus.Active) return `certificate ${certificateId} is ${record.status}`;
    // Assumed, not documented by AWS: a device certificate under an INACTIVE registered CA cannot connect.
    const ca = record.caCertificateId ? this.state.caCertificates[record.caCertificateId] : undefined;
    if (ca && ca.status !== CaCertificateStatus.Active) return `the CA certificate ${ca.certificateId} that signed certificate ${certificateId} is ${ca.status}`;
    if (!this.state.policyTargets.hasOwners(record.certificateArn)) return `certificate ${certificateId} has no policy attached`;
    // A fleet policy that allows iot:Connect on client/* lets any ACTIVE certificate use any client id.
    if (clientIdPolicy === 'any') return undefined;
    if (!this.state.things[clientId]) return `no thing named ${clientId}`;
    if (!this.state.thingPrincipals.has(clientId, record.certificateArn)) {
      return `certificate ${certificateId} is not attached to thing ${clientId}`;
    }
    return undefined;
  }

  // ---- provisioning (in-process API for the runtime, demo and tests) --------------------

  /** Creates (or reuses) the thing and policy, issues an ACTIVE certificate and attaches both. */
  async provisionDevice(input: ProvisionDeviceInput): Promise<ProvisionedDevice> {
    const now = this.now();
    const createdAt = new Date(now.getTime() - (input.createdDaysAgo ?? 0) * DAY_MS);
    const notAfter = input.expiresInDays === undefined ? AWS_DEFAULT_NOT_AFTER : new Date(now.getTime() + input.expiresInDays * DAY_MS);
    const validity: Validity = { notBefore: new Date(createdAt.getTime() - 60_000), notAfter };
    if (!this.state.things[input.thingName]) this.createThing(input.thingName);
    if (!this.state.policies[input.policyName]) this.createPolicy(input.policyName, input.policyDocument ?? defaultDevicePolicy(this.region, this.account));
    let certificatePem: string;
    let certificateId: string;
    let privateKeyPem: string | undefined;
    if (input.csrPem) {
      const issued = await this.ca.signCsr(input.csrPem, validity);
      ({ certificatePem, certificateId } = issued);
    } else {
      const issued = await this.ca.createKeyAndCertificate(validity, input.thingName);
      ({ certificatePem, certificateId, privateKeyPem } = issued);
    }
    const record = this.addCertificate(certificatePem, certificateId, validity, true, createdAt);
    this.attachPolicy(input.policyName, record.certificateArn);
    this.attachThingPrincipal(input.thingName, record.certificateArn);
    return { thingName: input.thingName, certificateId, certificateArn: record.certificateArn, certificatePem, privateKeyPem, caPem: this.ca.certificatePem };
  }

  // ---- persistence ---------------------------------------------------------------------

  private load(): RegistryState {
    if (!this.dataDir) return emptyState();
    const file = join(this.dataDir, REGISTRY_FILE);
    if (!existsSync(file)) return emptyState();
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<PersistedState>;
    return {
      ...emptyState(),
      ...parsed,
      policyTargets: Links.from(parsed.policyTargets ?? {}),
      thingPrincipals: Links.from(parsed.thingPrincipals ?? {}),
    };
  }

  private save(): void {
    if (!this.dataDir) return;
    mkdirSync(this.dataDir, { recursive: true });
    const file = join(this.dataDir, REGISTRY_FILE);
    // Write-then-rename: a crash mid-write leaves the previous registry, never half of one.
    writeFileSync(`${file}.tmp`, JSON.stringify(this.state, null, 2));
    renameSync(`${file}.tmp`, file);
  }

  private notifyRetired(certificateId: string, reason: 'status' | 'deleted'): void {
    for (const listener of this.retirementListeners) listener(certificateId, reason);
  }
}

/**
 * The policy Rotor's Terraform gives devices: connect as their own thing name, publish and
 * subscribe only below management/topic/{thingName}/. The broker enforces the same rule.
 */
export function defaultDevicePolicy(region: string, account: string): string {
  const prefix = `arn:aws:iot:${region}:${account}`;
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow', Action: 'iot:Connect', Resource: `${prefix}:client/\${iot:Connection.Thing.ThingName}` },
      { Effect: 'Allow', Action: ['iot:Publish', 'iot:Receive'], Resource: `${prefix}:topic/${TOPIC_ROOT}/\${iot:Connection.Thing.ThingName}/*` },
      { Effect: 'Allow', Action: 'iot:Subscribe', Resource: `${prefix}:topicfilter/${TOPIC_ROOT}/\${iot:Connection.Thing.ThingName}/*` },
    ],
  });
}
