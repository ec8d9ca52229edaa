import 'reflect-metadata';
import {
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  type Extension,
} from '@peculiar/x509';
import { AwsError } from '../types.js';

/**
 * The certificate templates the local Private CA applies (AWS Private CA user guide,
 * "Understanding certificate templates"): the extensions each one writes. Without a
 * TemplateArn, IssueCertificate uses EndEntityCertificate/V1. A template AWS has but this
 * emulation does not is refused by name, never silently replaced.
 */
export const Template = {
  EndEntity: 'EndEntityCertificate/V1',
  EndEntityClientAuth: 'EndEntityClientAuthCertificate/V1',
  EndEntityServerAuth: 'EndEntityServerAuthCertificate/V1',
  RootCa: 'RootCACertificate/V1',
  SubordinateCaPathLen0: 'SubordinateCACertificate_PathLen0/V1',
} as const;
export type Template = (typeof Template)[keyof typeof Template];
const TEMPLATES: readonly string[] = Object.values(Template);

const TEMPLATE_ARN = /^arn:aws[a-z-]*:acm-pca:::template\/(.+)$/;

export function templateArn(template: Template): string {
  return `arn:aws:acm-pca:::template/${template}`;
}

/** The template a TemplateArn names (EndEntityCertificate/V1 when absent). */
export function templateOf(arn: unknown): Template {
  if (arn === undefined || arn === null) return Template.EndEntity;
  const name = typeof arn === 'string' ? TEMPLATE_ARN.exec(arn)?.[1] : undefined;
  if (!name) throw new AwsError('InvalidArgsException', `TemplateArn ${JSON.stringify(arn)} is not a template ARN (arn:aws:acm-pca:::template/NAME/V1)`);
  if (!TEMPLATES.includes(name)) {
    throw new AwsError('InvalidArgsException', `template ${name} is not emulated by the local Private CA (it applies ${TEMPLATES.join(', ')})`);
  }
  return name as Template;
}

export function isCaTemplate(template: Template): boolean {
  return template === Template.RootCa || template === Template.SubordinateCaPathLen0;
}

/** The extensions a template writes, besides the key identifiers every certificate gets. */
export function templateExtensions(template: Template): Extension[] {
  const endEntityUsage = new KeyUsagesExtension(KeyUsageFlags.digitalSignature | KeyUsageFlags.keyEncipherment, true);
  const caUsage = new KeyUsagesExtension(KeyUsageFlags.digitalSignature | KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true);
  switch (template) {
    case Template.EndEntity:
      return [new BasicConstraintsExtension(false, undefined, true), endEntityUsage, new ExtendedKeyUsageExtension([ExtendedKeyUsage.serverAuth, ExtendedKeyUsage.clientAuth])];
    case Template.EndEntityClientAuth:
      return [new BasicConstraintsExtension(false, undefined, true), endEntityUsage, new ExtendedKeyUsageExtension([ExtendedKeyUsage.clientAuth])];
    case Template.EndEntityServerAuth:
      return [new BasicConstraintsExtension(false, undefined, true), endEntityUsage, new ExtendedKeyUsageExtension([ExtendedKeyUsage.serverAuth])];
    case Template.RootCa:
      return [new BasicConstraintsExtension(true, undefined, true), caUsage];
    case Template.SubordinateCaPathLen0:
      return [new BasicConstraintsExtension(true, 0, true), caUsage];
  }
}
