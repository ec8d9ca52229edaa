import { Bucket, DEFAULT_PACING } from '../../../../domain/pacing/index.js';
import { pacingConfig } from '../../../../functions/core/pacing-settings.js';

function enabled(env: Record<string, string>) {
  const config = pacingConfig(env);
  if (!config.enabled) throw new Error('expected pacing on');
  return config;
}

describe('pacing settings from the environment', () => {
  it('defaults to AWS quotas at 0.9, scale 1, when nothing is set', () => {
    const config = enabled({});
    expect(config.quotas.safetyFraction).toBe(0.9);
    expect(config.settings.quotas.quotas[Bucket.DescribeCertificate]).toMatchObject({ kind: 'rate', rate: 10 });
    expect(config.settings.maxQueueMs).toBe(DEFAULT_PACING.maxQueueMs);
    expect(config.timeScale).toBe(1);
  });

  it('is off only for ROTOR_PACING_ENABLED=false, and refuses another word', () => {
    expect(pacingConfig({ ROTOR_PACING_ENABLED: 'false' })).toEqual({ enabled: false });
    expect(pacingConfig({ ROTOR_PACING_ENABLED: 'true' }).enabled).toBe(true);
    expect(() => pacingConfig({ ROTOR_PACING_ENABLED: 'no' })).toThrow(/ROTOR_PACING_ENABLED/);
  });

  it('reads a quotas file, and the bare map Terraform writes (null bursts dropped)', () => {
    const file = enabled({ ROTOR_PACING_QUOTAS: '{"safetyFraction":0.8,"quotas":{"iot:DescribeCertificate":{"rate":2}}}' });
    expect(file.quotas.safetyFraction).toBe(0.8);
    expect(file.quotas.quotas[Bucket.DescribeCertificate]).toMatchObject({ rate: 2, source: 'quotas-file' });
    const map = enabled({ ROTOR_PACING_QUOTAS: '{"iot:CreateCertificateFromCsr":{"rate":3,"burst":null},"states:StartExecution":{"rate":150,"burst":800}}' });
    expect(map.quotas.quotas[Bucket.CreateCertificateFromCsr]).toMatchObject({ rate: 3, burst: 3 });
    expect(map.quotas.quotas[Bucket.StartExecution]).toMatchObject({ rate: 150, burst: 800 });
    expect(enabled({ ROTOR_PACING_QUOTAS: '{}' }).quotas.quotas[Bucket.DescribeCertificate]).toMatchObject({ rate: 10 });
  });

  it('lets ROTOR_PACING_SAFETY_FRACTION win, within (0, 1]', () => {
    expect(enabled({ ROTOR_PACING_SAFETY_FRACTION: '0.5', ROTOR_PACING_QUOTAS: '{"safetyFraction":0.8}' }).quotas.safetyFraction).toBe(0.5);
    expect(() => pacingConfig({ ROTOR_PACING_SAFETY_FRACTION: '1.5' })).toThrow(/ROTOR_PACING_SAFETY_FRACTION must be a number above 0 and at most 1/);
    expect(() => pacingConfig({ ROTOR_PACING_SAFETY_FRACTION: 'lots' })).toThrow(/ROTOR_PACING_SAFETY_FRACTION/);
  });

  it('names the variable and the field of a bad quotas text', () => {
    expect(() => pacingConfig({ ROTOR_PACING_QUOTAS: '{"quotas":{"iot:Describe":{"rate":2}}}' })).toThrow(/ROTOR_PACING_QUOTAS: unknown quota "iot:Describe"/);
    expect(() => pacingConfig({ ROTOR_PACING_QUOTAS: 'rate=2' })).toThrow(/ROTOR_PACING_QUOTAS: the quotas file is not JSON/);
    expect(() => pacingConfig({ ROTOR_PACING_QUOTAS: '{"iot:DescribeCertificate":{"rate":-1}}' })).toThrow(/quotas.iot:DescribeCertificate.rate must be a number above 0/);
  });

  it('scales rates and intervals by the local time scale, and keeps the configured quotas for metrics', () => {
    const config = enabled({ ROTOR_TIME_SCALE: '0.01', ROTOR_PACING_QUOTAS: '{"iot:DescribeCertificate":{"rate":2}}' });
    expect(config.settings.quotas.quotas[Bucket.DescribeCertificate]).toMatchObject({ rate: 200 });
    expect(config.quotas.quotas[Bucket.DescribeCertificate]).toMatchObject({ rate: 2 });
    expect(config.settings.maxQueueMs).toBe(20);
    expect(config.settings.aimd.cooldownMs).toBe(50);
    expect(() => pacingConfig({ ROTOR_TIME_SCALE: '0' })).toThrow(/ROTOR_TIME_SCALE/);
  });
});
