import { loadWiring } from '../../wiring/index';

/**
 * Every function Lambda invokes asynchronously has a dead-letter queue (issue 9, scenario 8):
 * the wiring's asyncInvocations list must name exactly the functions that an IoT rule, an SNS
 * subscription or a self-invocation (start-rotations' fan-out) reaches, so that a new
 * asynchronous path cannot be added without its queue, its alarm and its replay.
 */
describe('asynchronous invocations in the wiring', () => {
  const wiring = loadWiring();

  it('lists exactly the functions invoked by rules, subscriptions and themselves', () => {
    // Prepare
    const invokedAsynchronously = new Set([
      ...wiring.rules.map((rule) => rule.function),
      ...wiring.subscriptions.map((subscription) => subscription.function),
      ...Object.entries(wiring.functions)
        .filter(([, spec]) => spec.permissions['lambda:InvokeFunction'] === 'self')
        .map(([name]) => name),
    ]);
    // Assess
    expect([...wiring.asyncInvocations.functions].sort()).toEqual([...invokedAsynchronously].sort());
  });

  it('keeps Lambda\'s limits: 0-2 retries, 60-21600 s of event age', () => {
    const { maximumRetryAttempts, maximumEventAgeSeconds } = wiring.asyncInvocations;
    expect(Number.isInteger(maximumRetryAttempts) && maximumRetryAttempts >= 0 && maximumRetryAttempts <= 2).toBe(true);
    expect(Number.isInteger(maximumEventAgeSeconds) && maximumEventAgeSeconds >= 60 && maximumEventAgeSeconds <= 21_600).toBe(true);
  });

  it('names only functions the wiring deploys', () => {
    for (const name of wiring.asyncInvocations.functions) expect(Object.keys(wiring.functions)).toContain(name);
  });
});
