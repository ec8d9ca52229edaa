import { SignerKind, type SignerSettings } from '../../domain/signer.js';
import { awsIotSigner } from './signer-aws-iot.js';
import { privateCaSigner } from './signer-private-ca.js';
import type { Signer, SignerDeps } from './signer.js';

/** The signer the settings name (domain/signer.ts parseSignerSettings), built once per execution environment. */
export function createSigner(settings: SignerSettings, deps: SignerDeps): Signer {
  switch (settings.kind) {
    case SignerKind.AwsIot:
      return awsIotSigner(deps);
    case SignerKind.PrivateCa:
      if (!deps.pca) throw new Error('the private-ca signer needs a Private CA client');
      return privateCaSigner(settings, { iot: deps.iot, pca: deps.pca, clock: deps.clock, issuingCaArn: deps.issuingCaArn });
  }
}
