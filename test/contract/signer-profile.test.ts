import { bucketDemand, CALL_PROFILE, CallSite, privateCaIssueProfile } from '../../domain/pacing/call-profile.js';
import { AWS_DEFAULT_QUOTAS, Bucket, parseQuotasFile } from '../../domain/pacing/quotas.js';
import { loadWiring } from '../../wiring/index.js';

/**
 * The private-ca signer's Issue certificate, as the call profile and the quotas see it: it
 * spends Private CA's and IoT's registration buckets instead of CreateCertificateFromCsr, only
 * calls what issue-certificate may call, and its quotas can be overridden like any other.
 */
describe('the private-ca path of Issue certificate', () => {
  const allowed = Object.keys(loadWiring().functions['issue-certificate'].permissions);

  it.each(['DEFAULT', 'SNI_ONLY'] as const)('(%s) calls only what issue-certificate may call', (registration) => {
    // Act
    const calls = Object.keys(privateCaIssueProfile(registration).calls);
    // Assess
    expect(calls.filter((operation) => !allowed.includes(operation))).toEqual([]);
  });

  it('spends Private CA and RegisterCertificate instead of CreateCertificateFromCsr, the rest unchanged', () => {
    // Act
    const demand = bucketDemand(privateCaIssueProfile('DEFAULT'));
    const awsIot = bucketDemand(CALL_PROFILE[CallSite.IssueCertificate]);
    // Assess
    expect(demand[Bucket.CreateCertificateFromCsr]).toBeUndefined();
    expect(demand[Bucket.PcaIssueCertificate]).toBe(1);
    expect(demand[Bucket.PcaGetCertificate]).toBe(1);
    expect(demand[Bucket.RegisterCertificate]).toBe(1);
    expect(demand[Bucket.RegisterCertificateWithoutCA]).toBeUndefined();
    const { [Bucket.CreateCertificateFromCsr]: _created, ...shared } = awsIot;
    expect(demand).toMatchObject(shared);
  });

  it('registers without the CA in SNI_ONLY mode', () => {
    const demand = bucketDemand(privateCaIssueProfile('SNI_ONLY'));
    expect(demand[Bucket.RegisterCertificateWithoutCA]).toBe(1);
    expect(demand[Bucket.RegisterCertificate]).toBeUndefined();
  });

  it('has Private CA quotas that a quotas file overrides like any other', () => {
    // Prepare
    expect(AWS_DEFAULT_QUOTAS[Bucket.PcaIssueCertificate]).toMatchObject({ kind: 'rate', rate: 25 });
    // Act
    const settings = parseQuotasFile(JSON.stringify({ quotas: { 'acm-pca:IssueCertificate': { rate: 50 }, 'acm-pca:GetCertificate': { rate: 100, burst: 200 } } }));
    // Assess
    expect(settings.quotas[Bucket.PcaIssueCertificate]).toEqual({ kind: 'rate', rate: 50, burst: 50, source: 'quotas-file' });
    expect(settings.quotas[Bucket.PcaGetCertificate]).toEqual({ kind: 'rate', rate: 100, burst: 200, source: 'quotas-file' });
  });
});
