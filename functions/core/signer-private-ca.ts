import { createHash, X509Certificate } from 'node:crypto';
import { RegisterCertificateCommand, RegisterCertificateWithoutCACommand, type IoTClient } from '@aws-sdk/client-iot';
import { IotCaRegistration, issueIdempotencyToken, SignerKind, signingAlgorithmFor, type PrivateCaSettings, type SigningAlgorithm } from '../../domain/signer.js';
import { DescribeCertificateAuthorityCommand, GetCertificateCommand, IssueCertificateCommand, type PrivateCaClient } from '../aws/acm-pca.js';
import { isNamed } from '../aws/errors.js';
import type { Clock } from './clock.js';
import { markCreatedNothing, notAfterOf, type SignedCertificate, type Signer } from './signer.js';

export interface PrivateCaSignerDeps {
  /** RegisterCertificate is safe to retry (a second call finds the first's certificate): the retrying client. */
  iot: IoTClient;
  pca: PrivateCaClient;
  clock: Clock;
  /**
   * The CA a CA rollover switched issuing to (functions/core/issuing-ca.ts), read at every
   * signature; undefined or no answer: settings.caArn. Absent: always settings.caArn.
   */
  issuingCaArn?: () => Promise<string | undefined>;
}

/**
 * How long to wait for Private CA to sign. IssueCertificate is asynchronous: GetCertificate
 * answers RequestInProgressException until the certificate is ready (usually well under a
 * second). The wait is bounded well inside the function's 60 s timeout; past it the attempt
 * fails, and a retry within five minutes gets the same certificate (idempotency token).
 */
export interface IssueWait {
  initialDelayMs: number;
  maxDelayMs: number;
  totalMs: number;
}
export const DEFAULT_ISSUE_WAIT: IssueWait = { initialDelayMs: 200, maxDelayMs: 2_000, totalMs: 20_000 };

/** Private CA accepted the request but did not sign within the wait. */
export class CertificateNotIssued extends Error {
  constructor(certificateArn: string, waitedMs: number) {
    super(`Private CA has not issued ${certificateArn} after ${waitedMs} ms`);
    this.name = 'CertificateNotIssued';
  }
}

/** The Private CA is not in a state to sign (DISABLED, EXPIRED, PENDING_CERTIFICATE, …). */
export class PrivateCaNotActive extends Error {
  constructor(caArn: string, status: string) {
    super(`the Private CA ${caArn} is ${status}, not ACTIVE: it cannot sign device certificates`);
    this.name = 'PrivateCaNotActive';
  }
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/;

/** IoT's certificate id is the SHA-256 of the certificate's DER, hex. */
function iotCertificateId(certificatePem: string): string {
  return createHash('sha256').update(new X509Certificate(certificatePem).raw).digest('hex');
}

/**
 * The private-ca signer: IssueCertificate (validity, template, idempotency token from the
 * rotation and the key), GetCertificate until it is signed, then RegisterCertificate with the
 * issuing CA's certificate (CA registered in DEFAULT mode) or RegisterCertificateWithoutCA
 * (SNI_ONLY), ACTIVE. Everything before the registration leaves nothing in IoT, so its
 * errors are marked created-nothing; a certificate signed but never registered authenticates
 * nowhere in IoT and simply expires (docs/design.md, "Signers").
 */
export function privateCaSigner(settings: PrivateCaSettings, deps: PrivateCaSignerDeps, wait: IssueWait = DEFAULT_ISSUE_WAIT): Signer {
  /** Per CA: a rollover changes the CA, and the new one's key may differ. */
  const algorithms = new Map<string, Promise<SigningAlgorithm>>();

  /** Set, or the CA's own key decides (one DescribeCertificateAuthority per CA per execution environment). */
  const signingAlgorithm = (caArn: string): Promise<SigningAlgorithm> => {
    if (settings.signingAlgorithm) return Promise.resolve(settings.signingAlgorithm);
    let algorithm = algorithms.get(caArn);
    if (!algorithm) {
      algorithm = (async () => {
        const out = await deps.pca.send(new DescribeCertificateAuthorityCommand({ CertificateAuthorityArn: caArn }));
        const ca = out.CertificateAuthority;
        if (ca?.Status && ca.Status !== 'ACTIVE') throw new PrivateCaNotActive(caArn, ca.Status);
        const key = ca?.CertificateAuthorityConfiguration?.KeyAlgorithm;
        if (!key) throw new Error(`DescribeCertificateAuthority returned no key algorithm for ${caArn}`);
        return signingAlgorithmFor(key);
      })();
      algorithms.set(caArn, algorithm);
      // A failed look-up is not cached: the next rotation asks again.
      algorithm.catch(() => algorithms.delete(caArn));
    }
    return algorithm;
  };

  const issuedCertificate = async (caArn: string, certificateArn: string): Promise<{ certificatePem: string; chainPem: string }> => {
    let delay = wait.initialDelayMs;
    let waited = 0;
    for (;;) {
      try {
        const out = await deps.pca.send(new GetCertificateCommand({ CertificateAuthorityArn: caArn, CertificateArn: certificateArn }));
        if (!out.Certificate) throw new Error(`GetCertificate returned no certificate for ${certificateArn}`);
        return { certificatePem: out.Certificate, chainPem: out.CertificateChain ?? '' };
      } catch (error) {
        if (!isNamed(error, 'RequestInProgressException')) throw error;
        if (waited >= wait.totalMs) throw new CertificateNotIssued(certificateArn, waited);
        await deps.clock.sleep(delay);
        waited += delay;
        delay = Math.min(delay * 2, wait.maxDelayMs);
      }
    }
  };

  const register = async (certificatePem: string, chainPem: string): Promise<{ certificateId: string; certificateArn: string }> => {
    try {
      const out =
        settings.registration === IotCaRegistration.Default
          ? await deps.iot.send(new RegisterCertificateCommand({ certificatePem, caCertificatePem: issuingCaPem(chainPem), status: 'ACTIVE' }))
          : await deps.iot.send(new RegisterCertificateWithoutCACommand({ certificatePem, status: 'ACTIVE' }));
      if (!out.certificateId || !out.certificateArn) throw new Error('RegisterCertificate returned no certificate id or ARN');
      return { certificateId: out.certificateId, certificateArn: out.certificateArn };
    } catch (error) {
      // An earlier attempt of this rotation registered it (same token, same certificate).
      if (isNamed(error, 'ResourceAlreadyExistsException')) {
        const existing = error as { resourceId?: string; resourceArn?: string };
        if (existing.resourceArn) return { certificateId: existing.resourceId ?? iotCertificateId(certificatePem), certificateArn: existing.resourceArn };
      }
      // Refused (the CA is not registered, the chain does not verify, …): nothing is in IoT.
      if (isRefusal(error)) throw markCreatedNothing(error);
      throw error;
    }
  };

  return {
    kind: SignerKind.PrivateCa,
    async sign({ csrPem, rotationId, keyFingerprint }): Promise<SignedCertificate> {
      let signed: { certificatePem: string; chainPem: string };
      try {
        const caArn = (await deps.issuingCaArn?.()) ?? settings.caArn;
        const issued = await deps.pca.send(
          new IssueCertificateCommand({
            CertificateAuthorityArn: caArn,
            Csr: Buffer.from(csrPem, 'utf8'),
            SigningAlgorithm: await signingAlgorithm(caArn),
            Validity: { Value: settings.validity.value, Type: settings.validity.type },
            TemplateArn: settings.templateArn,
            IdempotencyToken: issueIdempotencyToken(rotationId, keyFingerprint),
          }),
        );
        if (!issued.CertificateArn) throw new Error('IssueCertificate returned no certificate ARN');
        signed = await issuedCertificate(caArn, issued.CertificateArn);
      } catch (error) {
        throw markCreatedNothing(error);
      }
      const registered = await register(signed.certificatePem, signed.chainPem);
      return { ...registered, certificatePem: signed.certificatePem, notAfter: notAfterOf(signed.certificatePem) };
    },
  };
}

/** The issuing CA's certificate: the first of GetCertificate's chain. */
function issuingCaPem(chainPem: string): string {
  const first = PEM_CERTIFICATE.exec(chainPem);
  if (!first) throw markCreatedNothing(new Error('GetCertificate returned no certificate chain: RegisterCertificate (DEFAULT) needs the issuing CA certificate'));
  return `${first[0]}\n`;
}

/** A 4xx answer other than a throttle: the request was refused and changed nothing. */
function isRefusal(error: unknown): boolean {
  if (isNamed(error, 'ThrottlingException', 'TooManyRequestsException')) return false;
  const status = (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
  return typeof status === 'number' && status >= 400 && status < 500;
}

