import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorName } from '../../domain/errors';
import { DEVICE_TO_CLOUD, TOPIC_ROOT, ruleSqlFor } from '../../domain/topics';
import { REPO_ROOT } from '../../wiring/index';

/**
 * Terraform cannot import the domain, so the two strings it must spell itself — the topic
 * root and the rule SQL — are checked here against domain/topics.ts.
 */
const locals = readFileSync(join(REPO_ROOT, 'terraform', 'locals.tf'), 'utf8');

describe('terraform ↔ domain', () => {
  it('uses the domain topic root', () => {
    // Prepare / Act
    const match = /^\s*topic_root\s*=\s*"([^"]+)"/m.exec(locals);
    // Assess
    expect(match?.[1]).toBe(TOPIC_ROOT);
  });

  it.each(DEVICE_TO_CLOUD)('renders the rule SQL of %s exactly as ruleSqlFor does', (type) => {
    // Prepare: the SQL template in locals.tf, with Terraform's interpolations filled.
    const template = /type\s*=>\s*"(SELECT [^"]+)"/.exec(locals)?.[1];
    expect(template).toBeDefined();
    // Act
    const rendered = template!.replace('${local.topic_root}', TOPIC_ROOT).replace('${type}', type);
    // Assess
    expect(rendered).toBe(ruleSqlFor(type));
  });

  it('names the escalation failure error as domain/errors.ts does (the EventBridge rule and alarm match it)', () => {
    // Prepare / Act
    const match = /^\s*escalation_failed_error\s*=\s*"([^"]+)"/m.exec(locals);
    // Assess
    expect(match?.[1]).toBe(ErrorName.EscalationFailed);
  });

  it('spells the topic root once, in locals.tf, and nowhere else in the module', () => {
    // Prepare
    const { readdirSync } = jest.requireActual<typeof import('node:fs')>('node:fs');
    const dir = join(REPO_ROOT, 'terraform');
    // Comments may name the topics; code must take them from local.topic_root.
    const code = (text: string): string => text.split('\n').filter((line) => !/^\s*(#|\/\/)/.test(line)).join('\n');
    const count = (text: string): number => code(text).split(TOPIC_ROOT).length - 1;
    // Act
    const perFile = readdirSync(dir)
      .filter((f) => f.endsWith('.tf'))
      .map((f) => [f, count(readFileSync(join(dir, f), 'utf8'))] as const)
      .filter(([, n]) => n > 0);
    // Assess
    expect(perFile).toEqual([['locals.tf', 1]]);
  });
});
