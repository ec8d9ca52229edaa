import { AdmissionController, CallSite, CALL_PROFILE, privateCaIssueProfile } from '../../../../domain/pacing/index';
import { parseSignerSettings, type PrivateCaSettings } from '../../../../domain/signer';
import { pacingConfig } from '../../../../functions/core/pacing-settings';
import { signerPacing } from '../../../../functions/core/signer-pacing';

const CA_ARN = 'arn:aws:acm-pca:eu-west-1:123456789012:certificate-authority/0b8e5c1e-7a51-4a43-9a1f-3f0c6d2b9e11';
const PRIVATE_CA = parseSignerSettings({ ROTOR_SIGNER: 'private-ca', ROTOR_PCA_ARN: CA_ARN }) as PrivateCaSettings;
/** Private CA's IssueCertificate at 1 TPS, as a quotas file (ROTOR_PACING_QUOTAS) would set it. */
const QUOTAS = { ROTOR_PACING_QUOTAS: JSON.stringify({ 'acm-pca:IssueCertificate': { rate: 1, burst: 1 } }) };

function enabled(config: ReturnType<typeof pacingConfig>) {
  if (!config.enabled) throw new Error('pacing is off');
  return config;
}

/** When each of `n` Issue certificate steps, asking at once, may make its calls. */
function slots(config: ReturnType<typeof pacingConfig>, n: number): number[] {
  const controller = new AdmissionController(enabled(config).settings, 0);
  return Array.from({ length: n }, () => controller.reserve(CallSite.IssueCertificate, 0));
}

describe('Issue certificate\'s pacing with the signer it runs with', () => {
  it('leaves aws-iot and disabled pacing as they are', () => {
    // Prepare
    const config = pacingConfig(QUOTAS);
    const off = pacingConfig({ ROTOR_PACING_ENABLED: 'false' });
    // Act / Assess
    expect(signerPacing(config, { kind: 'aws-iot' })).toBe(config);
    expect(signerPacing(off, PRIVATE_CA)).toBe(off);
  });

  it('with private-ca, reserves IssueCertificate, GetCertificate and RegisterCertificate instead of CreateCertificateFromCsr', () => {
    // Act
    const config = enabled(signerPacing(pacingConfig(QUOTAS), PRIVATE_CA));
    const sni = enabled(signerPacing(pacingConfig(QUOTAS), { ...PRIVATE_CA, registration: 'SNI_ONLY' }));
    // Assess
    expect(config.settings.siteProfiles?.[CallSite.IssueCertificate]).toEqual(privateCaIssueProfile('DEFAULT'));
    expect(Object.keys(config.settings.siteProfiles?.[CallSite.IssueCertificate]?.calls ?? {})).toEqual(
      expect.arrayContaining(['acm-pca:IssueCertificate', 'acm-pca:GetCertificate', 'iot:RegisterCertificate']),
    );
    expect(config.settings.siteProfiles?.[CallSite.IssueCertificate]?.calls).not.toHaveProperty(['iot:CreateCertificateFromCsr']);
    expect(sni.settings.siteProfiles?.[CallSite.IssueCertificate]?.calls).toHaveProperty(['iot:RegisterCertificateWithoutCA'], 1);
    expect(CALL_PROFILE[CallSite.IssueCertificate].calls).toHaveProperty(['iot:CreateCertificateFromCsr']);
  });

  it('spaces the steps by the acm-pca:IssueCertificate quota with private-ca, and not with aws-iot', () => {
    // Act
    const privateCa = slots(signerPacing(pacingConfig(QUOTAS), PRIVATE_CA), 4);
    const awsIot = slots(pacingConfig(QUOTAS), 4);
    // Assess: 1 TPS × the 0.9 safety fraction: one step every 1.11 s.
    expect(privateCa[3] - privateCa[0]).toBeGreaterThanOrEqual(3 * 1000);
    expect(awsIot[3] - awsIot[0]).toBeLessThan(1000);
  });
});
