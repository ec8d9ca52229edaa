import { InvalidArgumentError } from 'commander';
import { describeSigner, localSigner, signerOption, validityDaysOption } from '../../../cli/signer-options';
import { defaultSettings } from '../../../wiring/index';

describe('--signer and --pca-validity-days', () => {
  it('takes the two signers by name and refuses anything else', () => {
    // Act / Assess
    expect(signerOption('aws-iot')).toBe('aws-iot');
    expect(signerOption('private-ca')).toBe('private-ca');
    expect(() => signerOption('acm')).toThrow(new InvalidArgumentError('one of aws-iot, private-ca is expected'));
  });

  it.each(['30', '0', '-5', '45.5', 'ten', ''])('refuses a validity of %j: the expiring check would flag it at once, or it is not whole days', (value) => {
    // Act / Assess
    expect(() => validityDaysOption(value)).toThrow(/whole number of days over 30/);
  });

  it('takes a validity over 30 days', () => {
    // Act / Assess
    expect(validityDaysOption('31')).toBe(31);
    expect(validityDaysOption('365')).toBe(365);
  });

  it('gives private-ca a validity (365 days unless told), and refuses a validity with aws-iot', () => {
    // Act / Assess
    expect(localSigner('private-ca', undefined)).toEqual({ kind: 'private-ca', validityDays: 365 });
    expect(localSigner('private-ca', 90)).toEqual({ kind: 'private-ca', validityDays: 90 });
    expect(localSigner('aws-iot', undefined)).toEqual({ kind: 'aws-iot' });
    expect(() => localSigner('aws-iot', 90)).toThrow(/--pca-validity-days needs --signer private-ca/);
  });

  it('describes who signs and for how long', () => {
    // Prepare
    const settings = defaultSettings();
    // Act / Assess
    expect(describeSigner(settings)).toBe('aws-iot (CreateCertificateFromCsr; new certificates expire on 2049-12-31)');
    expect(describeSigner({ ...settings, signer: 'private-ca', privateCaValidityDays: 90 })).toBe('private-ca (the local Private CA above; new certificates valid 90 days)');
  });
});
