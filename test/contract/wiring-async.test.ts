import { loadWiring } from '../../wiring/index';

/**
 * Every function Lambda invokes asynchronously has a dead-letter queue (issue 9, scenario 8):
 * the wiring's asyncInvocations list must name exactly the functions that an IoT rule, an SNS
 * subscription or a self-invocation (start-rotations' fan-out) reaches, so that a new
 * asynchronous path cannot be added without its queue, its alarm and its replay. The rules'
 * function is the exception when it is fed through the rule queue (issue 10 part 4): its
 * dead-letter queue is that queue's redrive target instead.
 */
describe('asynchronous invocations in the wiring', () => {
  const wiring = loadWiring();

  it('lists exactly the functions invoked by rules, subscriptions and themselves', () => {
    // Prepare
    const invokedAsynchronously = new Set([
      // A rule's function fed through the rule queue is invoked by its event source mapping, synchronously.
      ...wiring.rules.map((rule) => rule.function).filter((name) => name !== wiring.ruleQueue.function),
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

  it('feeds every rule\'s function through the rule queue, within the limits of SQS and its event source mapping', () => {
    const { ruleQueue } = wiring;
    for (const rule of wiring.rules) expect(rule.function).toBe(ruleQueue.function);
    expect(Object.keys(wiring.functions)).toContain(ruleQueue.function);
    expect(ruleQueue.batchSize >= 1 && ruleQueue.batchSize <= 10).toBe(true);
    expect(ruleQueue.maximumConcurrency >= 2 && ruleQueue.maximumConcurrency <= 1000).toBe(true);
    expect(ruleQueue.maxReceiveCount >= 1 && ruleQueue.maxReceiveCount <= 1000).toBe(true);
    // A record must stay hidden while the function may still be working on it.
    expect(ruleQueue.visibilityTimeoutSeconds).toBeGreaterThanOrEqual(wiring.functions[ruleQueue.function].timeoutSeconds);
    expect(ruleQueue.messageRetentionSeconds >= 60 && ruleQueue.messageRetentionSeconds <= 1_209_600).toBe(true);
  });

  it('names only functions the wiring deploys', () => {
    for (const name of wiring.asyncInvocations.functions) expect(Object.keys(wiring.functions)).toContain(name);
  });
});
