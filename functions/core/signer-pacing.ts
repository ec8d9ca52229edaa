import { CallSite, privateCaIssueProfile } from '../../domain/pacing/index.js';
import { SignerKind, type SignerSettings } from '../../domain/signer.js';
import type { PacingConfig } from './pacing-settings.js';

/**
 * Issue certificate's pacing for the signer it runs with. With private-ca the step's calls are
 * Private CA's IssueCertificate and GetCertificate and IoT's RegisterCertificate (or
 * RegisterCertificateWithoutCA), not CreateCertificateFromCsr: those are what it reserves on
 * the shared budget, against the `acm-pca:*` and `iot:Register*` quota buckets
 * (ROTOR_PACING_QUOTAS can set them, as any other).
 */
export function signerPacing(config: PacingConfig, signer: SignerSettings): PacingConfig {
  if (!config.enabled || signer.kind !== SignerKind.PrivateCa) return config;
  const siteProfiles = { ...config.settings.siteProfiles, [CallSite.IssueCertificate]: privateCaIssueProfile(signer.registration) };
  return { ...config, settings: { ...config.settings, siteProfiles } };
}
