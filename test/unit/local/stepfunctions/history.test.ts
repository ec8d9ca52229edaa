import { History } from '../../../../local/stepfunctions/history.js';

/**
 * A finished execution's history is kept deflated (local/stepfunctions/history.ts): read back,
 * it is the same events, and a redriven execution goes on numbering from where it stopped.
 */
describe('History', () => {
  it('reads back a sealed history as the events it held, and takes events again after a redrive', () => {
    let at = Date.parse('2026-12-01T04:00:00.123Z');
    const history = new History(() => new Date((at += 1500)));
    const csr = '-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n';
    history.add('ExecutionStarted', { input: JSON.stringify({ thingName: 'dev-1', csr }), inputDetails: { truncated: false } });
    history.add('TaskStateEntered', { name: 'Request CSR', input: JSON.stringify({ csr }) });
    history.add('TaskFailed', { error: 'States.Timeout', cause: 'no answer' });
    history.add('ExecutionFailed', { error: 'States.Timeout', cause: 'no answer' });
    const before = history.events.map((e) => ({ ...e }));

    history.seal();
    expect(history.events).toEqual(before);
    expect(history.events[0].timestamp).toBeInstanceOf(Date);
    expect(history.stateTransitions).toBe(1);
    expect(history.length).toBe(4);

    history.add('ExecutionRedriven', { redriveCount: 1 });
    history.add('TaskStateEntered', { name: 'Request CSR', input: '{}' });
    expect(history.events.map((e) => [e.id, e.previousEventId, e.type])).toEqual([
      [1, 0, 'ExecutionStarted'],
      [2, 1, 'TaskStateEntered'],
      [3, 2, 'TaskFailed'],
      [4, 3, 'ExecutionFailed'],
      [5, 4, 'ExecutionRedriven'],
      [6, 5, 'TaskStateEntered'],
    ]);
    expect(history.events.slice(0, 4)).toEqual(before);
    expect(history.stateTransitions).toBe(2);
  });
});
