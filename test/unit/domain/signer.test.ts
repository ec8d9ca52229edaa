import {
  DEFAULT_VALIDITY_DAYS,
  issueIdempotencyToken,
  parseSignerSettings,
  SignerSettingsError,
  signingAlgorithmFor,
} from '../../../domain/signer.js';

const CA = 'arn:aws:acm-pca:eu-west-1:123456789012:certificate-authority/0f3a8c1e-5b7d-4e2a-9c61-2d8f4b7a6e10';

describe('signer settings', () => {
  it('default to aws-iot, today\'s signer, when nothing is set', () => {
    // Act
    const settings = parseSignerSettings({});
    // Assess
    expect(settings).toEqual({ kind: 'aws-iot' });
  });

  it('ignore the private-ca variables with aws-iot (a deployment sets them all, empty or not)', () => {
    expect(parseSignerSettings({ ROTOR_SIGNER: 'aws-iot', ROTOR_PCA_ARN: '', ROTOR_PCA_VALIDITY_DAYS: '365', ROTOR_IOT_CA_REGISTRATION: 'DEFAULT' })).toEqual({ kind: 'aws-iot' });
  });

  it('read private-ca with its defaults: 365 days, the end-entity template of the CA\'s partition, DEFAULT registration, algorithm from the CA', () => {
    // Act
    const settings = parseSignerSettings({ ROTOR_SIGNER: 'private-ca', ROTOR_PCA_ARN: CA });
    // Assess
    expect(settings).toEqual({
      kind: 'private-ca',
      caArn: CA,
      validity: { value: DEFAULT_VALIDITY_DAYS, type: 'DAYS' },
      templateArn: 'arn:aws:acm-pca:::template/EndEntityCertificate/V1',
      registration: 'DEFAULT',
    });
  });

  it('read every private-ca setting that is set', () => {
    // Prepare
    const govCa = CA.replace('arn:aws:', 'arn:aws-us-gov:').replace('eu-west-1', 'us-gov-west-1');
    // Act
    const settings = parseSignerSettings({
      ROTOR_SIGNER: ' private-ca ',
      ROTOR_PCA_ARN: govCa,
      ROTOR_PCA_VALIDITY_DAYS: '90',
      ROTOR_PCA_TEMPLATE_ARN: 'arn:aws-us-gov:acm-pca:::template/EndEntityClientAuthCertificate/V1',
      ROTOR_PCA_SIGNING_ALGORITHM: 'SHA384WITHECDSA',
      ROTOR_IOT_CA_REGISTRATION: 'SNI_ONLY',
    });
    // Assess
    expect(settings).toEqual({
      kind: 'private-ca',
      caArn: govCa,
      validity: { value: 90, type: 'DAYS' },
      templateArn: 'arn:aws-us-gov:acm-pca:::template/EndEntityClientAuthCertificate/V1',
      signingAlgorithm: 'SHA384WITHECDSA',
      registration: 'SNI_ONLY',
    });
  });

  it.each([
    ['an unknown signer', { ROTOR_SIGNER: 'acm' }, /ROTOR_SIGNER must be one of aws-iot, private-ca; got "acm"/],
    ['private-ca without a CA', { ROTOR_SIGNER: 'private-ca' }, /needs ROTOR_PCA_ARN/],
    ['a CA ARN that is not one', { ROTOR_SIGNER: 'private-ca', ROTOR_PCA_ARN: 'arn:aws:acm:eu-west-1:123456789012:certificate/abc' }, /ROTOR_PCA_ARN must be a Private CA ARN/],
    ['a validity that is not a whole number', { ROTOR_SIGNER: 'private-ca', ROTOR_PCA_ARN: CA, ROTOR_PCA_VALIDITY_DAYS: '90.5' }, /ROTOR_PCA_VALIDITY_DAYS must be a whole number of days; got "90.5"/],
    ['a validity in another unit', { ROTOR_SIGNER: 'private-ca', ROTOR_PCA_ARN: CA, ROTOR_PCA_VALIDITY_DAYS: '1y' }, /whole number of days/],
    ['a validity the expiring check would flag at once', { ROTOR_SIGNER: 'private-ca', ROTOR_PCA_ARN: CA, ROTOR_PCA_VALIDITY_DAYS: '30' }, /must be more than 30/],
    ['a template that is not a template ARN', { ROTOR_SIGNER: 'private-ca', ROTOR_PCA_ARN: CA, ROTOR_PCA_TEMPLATE_ARN: 'EndEntityCertificate/V1' }, /ROTOR_PCA_TEMPLATE_ARN must be/],
    ['an unknown signing algorithm', { ROTOR_SIGNER: 'private-ca', ROTOR_PCA_ARN: CA, ROTOR_PCA_SIGNING_ALGORITHM: 'SHA1WITHRSA' }, /ROTOR_PCA_SIGNING_ALGORITHM must be one of/],
    ['an unknown registration mode', { ROTOR_SIGNER: 'private-ca', ROTOR_PCA_ARN: CA, ROTOR_IOT_CA_REGISTRATION: 'sni_only' }, /ROTOR_IOT_CA_REGISTRATION must be one of DEFAULT, SNI_ONLY/],
  ])('refuse %s with an error that names the variable', (_case, env, message) => {
    // Act
    const parse = (): unknown => parseSignerSettings(env);
    // Assess
    expect(parse).toThrow(SignerSettingsError);
    expect(parse).toThrow(message);
  });
});

describe('the signing algorithm of a CA', () => {
  it.each([
    ['RSA_2048', 'SHA256WITHRSA'],
    ['RSA_4096', 'SHA256WITHRSA'],
    ['EC_prime256v1', 'SHA256WITHECDSA'],
    ['EC_secp384r1', 'SHA384WITHECDSA'],
    ['SM2', 'SM3WITHSM2'],
  ])('follows its key: %s → %s', (key, algorithm) => {
    expect(signingAlgorithmFor(key)).toBe(algorithm);
  });

  it('is an error for a key algorithm it does not know, naming the setting that overrides it', () => {
    expect(() => signingAlgorithmFor('ML_DSA_65')).toThrow(/set ROTOR_PCA_SIGNING_ALGORITHM/);
  });
});

describe('the IssueCertificate idempotency token', () => {
  it('is the same for the same rotation and key, and 36 characters at most', () => {
    expect(issueIdempotencyToken('rot-1', 'k'.repeat(64))).toBe(issueIdempotencyToken('rot-1', 'k'.repeat(64)));
    expect(issueIdempotencyToken('rot-1', 'k'.repeat(64))).toMatch(/^[0-9a-f]{36}$/);
  });

  it('differs for another rotation or another key', () => {
    const tokens = [issueIdempotencyToken('rot-1', 'a'), issueIdempotencyToken('rot-2', 'a'), issueIdempotencyToken('rot-1', 'b')];
    expect(new Set(tokens).size).toBe(3);
  });
});
