import 'reflect-metadata';
import { createHash, createPrivateKey, generateKeyPair as generateNodeKeyPair, randomBytes, webcrypto, X509Certificate as NodeX509Certificate, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  cryptoProvider,
  type CryptoProvider,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  Pkcs10CertificateRequest,
  X509Certificate,
  type Extension,
  type PublicKey,
  SubjectAlternativeNameExtension,
  SubjectKeyIdentifierExtension,
  X509CertificateGenerator,
} from '@peculiar/x509';
import { derToPem, pemToDer } from '../../domain/pem.js';
import { AwsError } from '../types.js';
import { commonNameDer, csrSignatureVerifies, readCsr, signCertificateDer, subjectKeyIdentifierDer, subjectOfCertificate, tbsCertificateDer } from './device-certificate.js';

// @peculiar/x509 needs a WebCrypto provider; node's is the one Lambda and the broker share.
cryptoProvider.set(webcrypto as unknown as Parameters<CryptoProvider['set']>[0]);

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;

/**
 * A device certificate's fixed extensions, encoded once: building them for every certificate
 * was ~15 % of the CA's time on the runtime's main thread (docs/demo.md, bench). The generator
 * only reads their encoding.
 */
const DEVICE_EXTENSIONS: readonly Extension[] = [
  new BasicConstraintsExtension(false, undefined, true),
  new KeyUsagesExtension(KeyUsageFlags.digitalSignature | KeyUsageFlags.keyEncipherment, true),
  new ExtendedKeyUsageExtension([ExtendedKeyUsage.clientAuth]),
];
const DEVICE_EXTENSIONS_DER: readonly Uint8Array[] = DEVICE_EXTENSIONS.map((extension) => new Uint8Array(extension.rawData));

/** An empty Name (SEQUENCE {}): a CSR without a subject gets AWS's CN=AWS IoT Certificate. */
const EMPTY_NAME = Uint8Array.from([0x30, 0x00]);
const DEFAULT_COMMON_NAME = 'AWS IoT Certificate';
/** Common names written straight to DER: no character a string DN would read as syntax. */
const PLAIN_COMMON_NAME = /^[A-Za-z0-9 :_.@-]+$/;

const generateEcKeyPair = promisify(generateNodeKeyPair);

/** AWS's CreateCertificateFromCsr certificates all expire at the end of 2049. */
export const AWS_DEFAULT_NOT_AFTER = new Date('2049-12-31T23:59:59Z');

export interface IssuedCertificate {
  certificatePem: string;
  certificateId: string;
  notBefore: Date;
  notAfter: Date;
}

export interface KeyAndCertificate extends IssuedCertificate {
  privateKeyPem: string;
  publicKeyPem: string;
}

export interface Validity {
  notBefore: Date;
  notAfter: Date;
}

/** The CA's own key and certificate, as persisted (PKCS#8 and X.509 PEM). */
export interface CaMaterial {
  certificatePem: string;
  privateKeyPem: string;
}

/**
 * basicConstraints pathLenConstraint of a CA that may cross-sign its successor: a chain
 * leaf → successor (cross-signed by this CA) → this CA puts one CA below this one, which
 * OpenSSL refuses under pathLenConstraint 0 ("path length constraint exceeded").
 */
export const CROSS_SIGNABLE_PATH_LENGTH = 1;

export interface LocalCaOptions {
  /** basicConstraints pathLenConstraint; 0 (no CA below this one) unless the CA will cross-sign a successor. */
  pathLength?: number;
}

/** AWS IoT's certificate id: SHA-256 of the certificate's DER, lowercase hex. */
export function certificateIdOf(certificate: string | Uint8Array): string {
  const der = typeof certificate === 'string' ? pemToDer(certificate, 'CERTIFICATE') : certificate;
  if (!der) throw new AwsError('InvalidRequestException', 'not a PEM "CERTIFICATE" block');
  return createHash('sha256').update(der).digest('hex');
}

function serialBytes(): Buffer {
  // A positive 16-byte serial: the top bit clear so DER does not read it as negative.
  const bytes = randomBytes(16);
  bytes[0] &= 0x7f;
  return bytes;
}

function serialNumber(): string {
  return serialBytes().toString('hex');
}

/** Whole seconds: what a certificate's validity can say. */
function toSeconds(date: Date): Date {
  return new Date(Math.floor(date.getTime() / 1000) * 1000);
}

async function exportPrivateKeyPem(key: CryptoKey): Promise<string> {
  return derToPem(new Uint8Array(await webcrypto.subtle.exportKey('pkcs8', key)), 'PRIVATE KEY');
}

async function exportPublicKeyPem(key: CryptoKey): Promise<string> {
  return derToPem(new Uint8Array(await webcrypto.subtle.exportKey('spki', key)), 'PUBLIC KEY');
}

async function generateKeyPair(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
}

/**
 * The local stand-in for the Amazon root that signs IoT device certificates: one EC P-256
 * key that signs device certificates from CSRs and the broker's TLS server certificate.
 */
export class LocalCa {
  /** Parsed once: every certificate issued names the CA's subject and key identifier. */
  private issuerParts: Promise<{ subjectName: X509Certificate['subjectName']; authorityKeyId: AuthorityKeyIdentifierExtension }> | undefined;
  /** The same, encoded, and the signing key as node:crypto takes it: for the DER path (device-certificate.ts). */
  private issuerDer: { subject: Uint8Array; authorityKeyId: Uint8Array; signingKey: KeyObject } | undefined;

  private constructor(
    private readonly signingKey: CryptoKey,
    readonly certificatePem: string,
    private readonly privateKeyPem: string,
  ) {}

  static async create(commonName = 'Rotor Local IoT CA', options: LocalCaOptions = {}): Promise<LocalCa> {
    const keys = await generateKeyPair();
    const now = new Date();
    const certificate = await X509CertificateGenerator.createSelfSigned({
      serialNumber: serialNumber(),
      name: `CN=${commonName}, O=Rotor local`,
      // Back-dated so that device certificates made "years ago" for tests still chain.
      notBefore: new Date(now.getTime() - 20 * 365 * 86_400_000),
      notAfter: new Date('2099-12-31T23:59:59Z'),
      signingAlgorithm: SIGNING,
      keys,
      extensions: [
        new BasicConstraintsExtension(true, options.pathLength ?? 0, true),
        new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign | KeyUsageFlags.digitalSignature, true),
        await SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    return new LocalCa(keys.privateKey, certificate.toString('pem'), await exportPrivateKeyPem(keys.privateKey));
  }

  static async load(material: CaMaterial): Promise<LocalCa> {
    const der = pemToDer(material.privateKeyPem, 'PRIVATE KEY');
    if (!der) throw new Error('the persisted CA private key is not a PEM "PRIVATE KEY" block');
    const key = await webcrypto.subtle.importKey('pkcs8', der, EC_P256, true, ['sign']);
    new NodeX509Certificate(material.certificatePem); // throws on a corrupt certificate
    return new LocalCa(key, material.certificatePem, material.privateKeyPem);
  }

  material(): CaMaterial {
    return { certificatePem: this.certificatePem, privateKeyPem: this.privateKeyPem };
  }

  get certificateId(): string {
    return certificateIdOf(this.certificatePem);
  }

  /** The CA certificate's basicConstraints pathLenConstraint; undefined when it sets none. */
  get pathLength(): number | undefined {
    return new X509Certificate(this.certificatePem).getExtension(BasicConstraintsExtension)?.pathLength;
  }

  /**
   * Whether a successor this CA cross-signs can verify under it: CAs made before
   * CROSS_SIGNABLE_PATH_LENGTH (pathLenConstraint 0) cannot, and TLS clients that hold this
   * certificate as their trust anchor read the constraint from it, so re-signing cannot help.
   */
  get canCrossSign(): boolean {
    const pathLength = this.pathLength;
    return pathLength === undefined || pathLength >= 1;
  }

  /**
   * A cross-certificate for `successor`: its subject, key and key identifier, signed by this CA,
   * so a TLS client that trusts only this CA verifies certificates the successor signs through it.
   * It is restricted to serverAuth: a client certificate cannot chain through it to this CA.
   */
  async crossSign(successor: LocalCa): Promise<IssuedCertificate> {
    if (!this.canCrossSign) {
      throw new Error(`${new NodeX509Certificate(this.certificatePem).subject.replace(/\n/g, ', ')} has pathLenConstraint 0: a CA it cross-signs cannot verify under it`);
    }
    const successorCertificate = new X509Certificate(successor.certificatePem);
    const own = new X509Certificate(this.certificatePem);
    const notAfter = Math.min(successorCertificate.notAfter.getTime(), own.notAfter.getTime());
    return this.issue(successorCertificate.subjectName, successorCertificate.publicKey, { notBefore: successorCertificate.notBefore, notAfter: new Date(notAfter) }, [
      // The successor signs only leaves below this chain.
      new BasicConstraintsExtension(true, 0, true),
      new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign | KeyUsageFlags.digitalSignature, true),
      new ExtendedKeyUsageExtension([ExtendedKeyUsage.serverAuth]),
    ]);
  }

  /**
   * Signs a device certificate for the CSR's key. The CSR must be well-formed and its
   * signature must verify, as AWS checks; the policy rules of PROTOCOL.md are Rotor's job.
   */
  async signCsr(csrPem: string, validity: Validity): Promise<IssuedCertificate> {
    const der = typeof csrPem === 'string' ? pemToDer(csrPem, 'CERTIFICATE REQUEST') : undefined;
    if (!der) throw new AwsError('InvalidRequestException', 'certificateSigningRequest is not a PEM "CERTIFICATE REQUEST"');
    // The common request (ECDSA or RSA over SHA-2, DER) is read and checked without asn1js; anything else takes the general path.
    const parts = readCsr(der);
    const verifies = parts && csrSignatureVerifies(parts);
    if (parts && verifies !== undefined) {
      if (!verifies) throw new AwsError('InvalidRequestException', 'the signature of the certificate signing request does not verify');
      const subject = Buffer.from(parts.subject).equals(EMPTY_NAME) ? commonNameDer(DEFAULT_COMMON_NAME) : parts.subject;
      return this.issueDer(subject, parts.publicKeyInfo, parts.publicKey, validity);
    }
    let csr: Pkcs10CertificateRequest;
    try {
      csr = new Pkcs10CertificateRequest(csrPem);
    } catch {
      throw new AwsError('InvalidRequestException', 'certificateSigningRequest is not a valid PKCS#10 request');
    }
    let verified = false;
    try {
      verified = await csr.verify();
    } catch {
      verified = false;
    }
    if (!verified) throw new AwsError('InvalidRequestException', 'the signature of the certificate signing request does not verify');
    return this.issue(csr.subject || 'CN=AWS IoT Certificate', csr.publicKey, validity, DEVICE_EXTENSIONS);
  }

  /** CreateKeysAndCertificate: a new key pair made here and its certificate. */
  async createKeyAndCertificate(validity: Validity, commonName = DEFAULT_COMMON_NAME): Promise<KeyAndCertificate> {
    if (PLAIN_COMMON_NAME.test(commonName)) {
      // Generated on libuv's pool, off the main thread, and written as DER (device-certificate.ts).
      const keys = await generateEcKeyPair('ec', { namedCurve: 'prime256v1' });
      const publicKeyInfo = new Uint8Array(keys.publicKey.export({ type: 'spki', format: 'der' }));
      // The uncompressed P-256 point (65 bytes) ends the SubjectPublicKeyInfo.
      const publicKey = publicKeyInfo.subarray(publicKeyInfo.length - 65);
      const issued = await this.issueDer(commonNameDer(commonName), publicKeyInfo, publicKey, validity);
      return {
        ...issued,
        privateKeyPem: derToPem(new Uint8Array(keys.privateKey.export({ type: 'pkcs8', format: 'der' })), 'PRIVATE KEY'),
        publicKeyPem: derToPem(publicKeyInfo, 'PUBLIC KEY'),
      };
    }
    const keys = await generateKeyPair();
    const issued = await this.issue(`CN=${commonName}`, keys.publicKey, validity, DEVICE_EXTENSIONS);
    return { ...issued, privateKeyPem: await exportPrivateKeyPem(keys.privateKey), publicKeyPem: await exportPublicKeyPem(keys.publicKey) };
  }

  /** The broker's TLS server certificate, valid for the loopback names devices dial. */
  async createServerCertificate(hostnames: readonly string[] = ['localhost'], ips: readonly string[] = ['127.0.0.1']): Promise<KeyAndCertificate> {
    const keys = await generateKeyPair();
    const now = new Date();
    const issued = await this.issue(`CN=${hostnames[0] ?? ips[0] ?? 'localhost'}`, keys.publicKey, {
      notBefore: new Date(now.getTime() - 3_600_000),
      notAfter: new Date(now.getTime() + 825 * 86_400_000),
    }, [
      new BasicConstraintsExtension(false, undefined, true),
      new KeyUsagesExtension(KeyUsageFlags.digitalSignature | KeyUsageFlags.keyEncipherment, true),
      new ExtendedKeyUsageExtension([ExtendedKeyUsage.serverAuth]),
      new SubjectAlternativeNameExtension([
        ...hostnames.map((value) => ({ type: 'dns' as const, value })),
        ...ips.map((value) => ({ type: 'ip' as const, value })),
      ]),
    ]);
    return { ...issued, privateKeyPem: await exportPrivateKeyPem(keys.privateKey), publicKeyPem: await exportPublicKeyPem(keys.publicKey) };
  }

  /** True when the certificate was signed by this CA's key. */
  issued(certificatePem: string): boolean {
    try {
      const certificate = new NodeX509Certificate(certificatePem);
      return certificate.verify(new NodeX509Certificate(this.certificatePem).publicKey);
    } catch {
      return false;
    }
  }

  /** A device certificate written as DER and signed with node:crypto (device-certificate.ts): what issue() writes, without asn1js. */
  private async issueDer(subject: Uint8Array, publicKeyInfo: Uint8Array, publicKey: Uint8Array, validity: Validity): Promise<IssuedCertificate> {
    if (!(validity.notAfter.getTime() > validity.notBefore.getTime())) {
      throw new AwsError('InvalidRequestException', 'the certificate would expire before it becomes valid');
    }
    if (!this.issuerDer) {
      this.issuerParts ??= this.readIssuerParts();
      const { authorityKeyId } = await this.issuerParts;
      this.issuerDer ??= {
        subject: subjectOfCertificate(pemToDer(this.certificatePem, 'CERTIFICATE') as Uint8Array),
        authorityKeyId: new Uint8Array(authorityKeyId.rawData),
        signingKey: createPrivateKey(this.privateKeyPem),
      };
    }
    const { subject: issuer, authorityKeyId, signingKey } = this.issuerDer;
    const tbs = tbsCertificateDer({
      serialNumber: serialBytes(),
      issuer,
      notBefore: validity.notBefore,
      notAfter: validity.notAfter,
      subject,
      publicKeyInfo,
      extensions: [...DEVICE_EXTENSIONS_DER, subjectKeyIdentifierDer(publicKey), authorityKeyId],
    });
    const der = signCertificateDer(tbs, signingKey);
    return { certificatePem: derToPem(der, 'CERTIFICATE'), certificateId: certificateIdOf(der), notBefore: toSeconds(validity.notBefore), notAfter: toSeconds(validity.notAfter) };
  }

  private async readIssuerParts(): Promise<{ subjectName: X509Certificate['subjectName']; authorityKeyId: AuthorityKeyIdentifierExtension }> {
    const caCertificate = new X509Certificate(this.certificatePem);
    return { subjectName: caCertificate.subjectName, authorityKeyId: await AuthorityKeyIdentifierExtension.create(caCertificate.publicKey) };
  }

  private async issue(
    subject: string | X509Certificate['subjectName'],
    publicKey: PublicKey | CryptoKey,
    validity: Validity,
    extensions: readonly Extension[],
  ): Promise<IssuedCertificate> {
    if (!(validity.notAfter.getTime() > validity.notBefore.getTime())) {
      throw new AwsError('InvalidRequestException', 'the certificate would expire before it becomes valid');
    }
    this.issuerParts ??= this.readIssuerParts();
    const { subjectName, authorityKeyId } = await this.issuerParts;
    const certificate = await X509CertificateGenerator.create({
      serialNumber: serialNumber(),
      subject,
      // The issuer is the CA's subject exactly as encoded, so TLS chain building matches it.
      issuer: subjectName,
      notBefore: validity.notBefore,
      notAfter: validity.notAfter,
      signingAlgorithm: SIGNING,
      publicKey,
      signingKey: this.signingKey,
      extensions: [
        ...extensions,
        await SubjectKeyIdentifierExtension.create(publicKey),
        authorityKeyId,
      ],
    });
    const der = new Uint8Array(certificate.rawData);
    return {
      certificatePem: derToPem(der, 'CERTIFICATE'),
      certificateId: certificateIdOf(der),
      notBefore: certificate.notBefore,
      notAfter: certificate.notAfter,
    };
  }
}
