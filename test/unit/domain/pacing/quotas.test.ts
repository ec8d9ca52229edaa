import { AWS_DEFAULT_QUOTAS, Bucket, BUCKETS, DEFAULT_QUOTA_SETTINGS, parseQuotasFile, QuotasFileError } from '../../../../domain/pacing/quotas.js';

describe('quotas as data', () => {
  it('holds issue 10\'s AWS defaults', () => {
    expect(AWS_DEFAULT_QUOTAS[Bucket.DescribeCertificate]).toMatchObject({ kind: 'rate', rate: 10 });
    expect(AWS_DEFAULT_QUOTAS[Bucket.CreateCertificateFromCsr]).toMatchObject({ kind: 'rate', rate: 15 });
    expect(AWS_DEFAULT_QUOTAS[Bucket.StartExecution]).toMatchObject({ kind: 'rate', rate: 300, burst: 1300 });
    expect(AWS_DEFAULT_QUOTAS[Bucket.SendTask]).toMatchObject({ kind: 'rate', rate: 500, burst: 3000 });
    expect(AWS_DEFAULT_QUOTAS[Bucket.StateTransition]).toMatchObject({ kind: 'rate', rate: 1500, burst: 5000 });
    expect(AWS_DEFAULT_QUOTAS[Bucket.MqttConnect]).toMatchObject({ kind: 'rate', rate: 500 });
    expect(AWS_DEFAULT_QUOTAS[Bucket.LambdaConcurrency]).toEqual({ kind: 'concurrency', concurrency: 1000, source: 'aws-default' });
    expect(Object.keys(AWS_DEFAULT_QUOTAS).sort()).toEqual([...BUCKETS].sort());
  });

  it('a quotas file overrides what it names and keeps the rest', () => {
    // Prepare
    const text = JSON.stringify({
      safetyFraction: 0.8,
      quotas: { 'iot:DescribeCertificate': { rate: 50 }, 'states:StartExecution': { rate: 150, burst: 800 }, 'lambda:ConcurrentExecutions': { concurrency: 100 } },
    });
    // Act
    const settings = parseQuotasFile(text);
    // Assess
    expect(settings.safetyFraction).toBe(0.8);
    expect(settings.quotas[Bucket.DescribeCertificate]).toEqual({ kind: 'rate', rate: 50, burst: 50, source: 'quotas-file' });
    expect(settings.quotas[Bucket.StartExecution]).toEqual({ kind: 'rate', rate: 150, burst: 800, source: 'quotas-file' });
    expect(settings.quotas[Bucket.LambdaConcurrency]).toEqual({ kind: 'concurrency', concurrency: 100, source: 'quotas-file' });
    expect(settings.quotas[Bucket.UpdateCertificate]).toBe(AWS_DEFAULT_QUOTAS[Bucket.UpdateCertificate]);
  });

  it('a rate given without a burst keeps the bucket as deep in seconds as the default', () => {
    const settings = parseQuotasFile('{"quotas":{"states:StartExecution":{"rate":150},"iot:DescribeCertificate":{"rate":5}}}');
    expect(settings.quotas[Bucket.StartExecution]).toMatchObject({ rate: 150, burst: 650 });
    expect(settings.quotas[Bucket.DescribeCertificate]).toMatchObject({ rate: 5, burst: 5 });
  });

  it.each([
    ['not JSON', '{', /not JSON/],
    ['an unknown quota', '{"quotas":{"iot:Describe":{"rate":3}}}', /unknown quota "iot:Describe"; known quotas: .*iot:DescribeCertificate/],
    ['a zero rate', '{"quotas":{"iot:DescribeCertificate":{"rate":0}}}', /quotas.iot:DescribeCertificate.rate must be a number above 0/],
    ['a rate for a concurrency', '{"quotas":{"lambda:ConcurrentExecutions":{"rate":5}}}', /is a concurrency/],
    ['a concurrency for a rate', '{"quotas":{"iot:DescribeCertificate":{"concurrency":5}}}', /is a rate/],
    ['a safety fraction above 1', '{"safetyFraction":1.5}', /at most 1/],
    ['an unknown top-level field', '{"quota":{}}', /unknown field\(s\) quota/],
  ])('rejects %s with an error that names it', (_name, text, message) => {
    expect(() => parseQuotasFile(text)).toThrow(QuotasFileError);
    expect(() => parseQuotasFile(text)).toThrow(message);
  });

  it('the default settings keep a safety margin', () => {
    expect(DEFAULT_QUOTA_SETTINGS.safetyFraction).toBeGreaterThan(0);
    expect(DEFAULT_QUOTA_SETTINGS.safetyFraction).toBeLessThan(1);
  });
});
