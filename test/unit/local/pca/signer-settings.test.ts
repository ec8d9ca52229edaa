import { SignerSettingsError } from '../../../../domain/signer';
import { signerSettings } from '../../../../local/pca/signer-settings';
import { exampleDeployment, functionEnvironment } from '../../../../wiring/index';

const CA_ARN = 'arn:aws:acm-pca:us-east-1:000000000000:certificate-authority/0b8e5c1e-7a51-4a43-9a1f-3f0c6d2b9e11';

describe('the local runtime\'s signer settings', () => {
  it('leaves the wiring\'s defaults (aws-iot) when no signer or aws-iot is asked for', () => {
    // Act / Assess
    expect(signerSettings(undefined, CA_ARN)).toEqual({});
    expect(signerSettings({ kind: 'aws-iot' }, CA_ARN)).toEqual({});
  });

  it('sets private-ca with the local CA, its validity and DEFAULT registration, which reach issue-certificate as Terraform\'s do', () => {
    // Act
    const settings = signerSettings({ kind: 'private-ca', validityDays: 60 }, CA_ARN);
    const deployment = exampleDeployment();
    const environment = functionEnvironment('issue-certificate', { ...deployment, settings: { ...deployment.settings, ...settings } });
    // Assess
    expect(settings).toEqual({ signer: 'private-ca', privateCaArn: CA_ARN, privateCaValidityDays: 60, iotCaRegistrationMode: 'DEFAULT' });
    expect(environment).toMatchObject({ ROTOR_SIGNER: 'private-ca', ROTOR_PCA_ARN: CA_ARN, ROTOR_PCA_VALIDITY_DAYS: '60', ROTOR_IOT_CA_REGISTRATION: 'DEFAULT' });
  });

  it('defaults the validity to 365 days', () => {
    // Act / Assess
    expect(signerSettings({ kind: 'private-ca' }, CA_ARN)).toMatchObject({ privateCaValidityDays: 365 });
  });

  it('refuses, with the functions\' own message, what issue-certificate would refuse at its cold start', () => {
    // Act / Assess
    expect(() => signerSettings({ kind: 'private-ca', validityDays: 30 }, CA_ARN)).toThrow(SignerSettingsError);
    expect(() => signerSettings({ kind: 'private-ca', validityDays: 30 }, CA_ARN)).toThrow(/ROTOR_PCA_VALIDITY_DAYS must be more than 30/);
    expect(() => signerSettings({ kind: 'private-ca' }, 'not-an-arn')).toThrow(/ROTOR_PCA_ARN must be a Private CA ARN/);
  });
});
