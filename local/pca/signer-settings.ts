import { IotCaRegistration, parseSignerSettings, SignerEnv, SignerKind, DEFAULT_VALIDITY_DAYS } from '../../domain/signer.js';
import type { Settings } from '../../wiring/index.js';

/**
 * The signer a local deployment runs with (`rotor local up --signer`, `rotor demo --signer`).
 * With 'private-ca' the CA is the local Private CA the runtime makes and registers with IoT in
 * DEFAULT mode (default-ca.ts): only the validity is the operator's to choose.
 */
export interface LocalSignerOptions {
  kind: SignerKind;
  /** private-ca only: the new certificates' validity in days (more than 30); 365 when absent. */
  validityDays?: number;
}

/**
 * The wiring settings (wiring.json `settings`) for a signer, as Terraform's variables set them:
 * the functions get them as ROTOR_SIGNER, ROTOR_PCA_ARN, … through the same wiring path. They are
 * checked here with the functions' own parser, so a bad validity fails `local up` with the
 * functions' message instead of every issue-certificate cold start.
 */
export function signerSettings(signer: LocalSignerOptions | undefined, privateCaArn: string): Settings {
  if (!signer || signer.kind === SignerKind.AwsIot) return {};
  const validityDays = signer.validityDays ?? DEFAULT_VALIDITY_DAYS;
  const settings = {
    signer: signer.kind,
    privateCaArn,
    privateCaValidityDays: validityDays,
    iotCaRegistrationMode: IotCaRegistration.Default,
  };
  parseSignerSettings({
    [SignerEnv.Signer]: settings.signer,
    [SignerEnv.CaArn]: settings.privateCaArn,
    [SignerEnv.ValidityDays]: String(settings.privateCaValidityDays),
    [SignerEnv.Registration]: settings.iotCaRegistrationMode,
  });
  return settings;
}

