import { parseDefinition } from '../../../../local/stepfunctions/definition.js';
import type { IntegrationDeps } from '../../../../local/stepfunctions/integrations.js';

/**
 * asl-validator's verdict is kept per definition text (local/stepfunctions/definition.ts): a
 * second CreateStateMachine with the same text gets the same answer, and its own parsed copy.
 */
describe('parseDefinition', () => {
  const deps = {} as IntegrationDeps;
  const valid = JSON.stringify({ StartAt: 'A', States: { A: { Type: 'Pass', End: true } } });
  const invalidText = JSON.stringify({ StartAt: 'A', States: { A: { Type: 'Pass', Next: 'Nowhere' } } });

  it('answers a repeated invalid definition with the same InvalidDefinition', () => {
    const messages = [0, 1].map(() => {
      try {
        parseDefinition(invalidText, deps);
        return 'accepted';
      } catch (error) {
        return `${(error as Error).name}: ${(error as Error).message}`;
      }
    });
    expect(messages[0]).toMatch(/^InvalidDefinition: .*Nowhere/);
    expect(messages[1]).toBe(messages[0]);
  });

  it('gives each parse of a repeated valid definition its own objects', () => {
    const first = parseDefinition(valid, deps);
    first.States.A.Comment = 'changed by the first caller';
    const second = parseDefinition(valid, deps);
    expect(second.States.A.Comment).toBeUndefined();
    expect(second).not.toBe(first);
  });
});
