export { PrivateCa, CaStatus } from './private-ca.js';
export type { CaRecord, PrivateCaOptions } from './private-ca.js';
export { PcaService, PCA_TARGET_PREFIX } from './pca-service.js';
export { Template, templateArn } from './templates.js';
export { KeyAlgorithm, SigningAlgorithm } from './algorithms.js';
export { notAfterOf, ValidityType } from './validity.js';
export { createActiveRootCa, type RootCaInput } from './root-ca.js';
export { certificateWhenIssued, ensureDefaultPrivateCa, ensureRegisteredPrivateCa, DEFAULT_PRIVATE_CA_TOKEN, type DefaultPrivateCa } from './default-ca.js';
export { signerSettings, type LocalSignerOptions } from './signer-settings.js';
