import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DefinitionError, executionPath, stateGraph, StateOutcome, type ViewEvent } from '../../../../local/console/execution-view';

/** The real ASL template, its ${placeholders} filled with anything: only the shape matters here. */
function rotorDefinition(): Record<string, unknown> {
  const template = readFileSync(join(__dirname, '../../../../statemachines/rotate-device.asl.json'), 'utf8');
  return JSON.parse(template.replace(/\$\{[A-Za-z]+\}/g, '1')) as Record<string, unknown>;
}

const failedHistory = (): ViewEvent[] =>
  (JSON.parse(readFileSync(join(__dirname, '../../cli/fixtures/failed-execution-history.json'), 'utf8')) as { events: ViewEvent[] }).events;

const entered = (id: number, name: string, type = 'Task'): ViewEvent => ({ id, type: `${type}StateEntered`, timestamp: `2025-01-01T00:00:${String(id).padStart(2, '0')}.000Z`, stateEnteredEventDetails: { name, input: '{}' } });
const exited = (id: number, name: string, type = 'Task'): ViewEvent => ({ id, type: `${type}StateExited`, stateExitedEventDetails: { name, output: '{"ok":true}' } });
const ev = (id: number, type: string, extra: Record<string, unknown> = {}): ViewEvent => ({ id, type, ...extra });

describe('stateGraph', () => {
  it('has a node for every state of the ASL and an edge for every Next and Catch', () => {
    // Prepare
    const definition = rotorDefinition();
    const states = definition.States as Record<string, { Next?: string; Catch?: unknown[] }>;
    // Act
    const graph = stateGraph(definition);
    // Assess
    expect(graph.startAt).toBe('Claim device');
    expect(graph.nodes.map((n) => n.name).sort()).toEqual(Object.keys(states).sort());
    const nexts = Object.values(states).filter((s) => s.Next).length;
    const catches = Object.values(states).reduce((sum, s) => sum + (s.Catch?.length ?? 0), 0);
    expect(graph.edges.filter((e) => e.kind === 'next')).toHaveLength(nexts);
    expect(graph.edges.filter((e) => e.kind === 'catch')).toHaveLength(catches);
    expect(graph.edges).toContainEqual(expect.objectContaining({ from: 'Request CSR', to: 'Roll back', kind: 'catch' }));
  });

  it('draws a state another change adds, and Choice rules and defaults as edges', () => {
    const graph = stateGraph({
      StartAt: 'Pace',
      States: {
        Pace: { Type: 'Choice', Choices: [{ Variable: '$.slow', BooleanEquals: true, Next: 'Wait a bit' }], Default: 'Go' },
        'Wait a bit': { Type: 'Wait', Seconds: 1, Next: 'Go' },
        Go: { Type: 'Succeed' },
      },
    });
    expect(graph.nodes.map((n) => `${n.name}:${n.type}`)).toEqual(['Pace:Choice', 'Wait a bit:Wait', 'Go:Succeed']);
    expect(graph.edges).toEqual([
      { from: 'Pace', to: 'Wait a bit', kind: 'choice', label: '$.slow' },
      { from: 'Pace', to: 'Go', kind: 'default', label: 'default' },
      { from: 'Wait a bit', to: 'Go', kind: 'next' },
    ]);
  });

  it('refuses a definition that is not JSON, has no states, or names a state it lacks', () => {
    expect(() => stateGraph('{nope')).toThrow(DefinitionError);
    expect(() => stateGraph({ Comment: 'x' })).toThrow('no StartAt or States');
    expect(() => stateGraph({ StartAt: 'A', States: { A: { Type: 'Pass', Next: 'B' } } })).toThrow("state 'A' goes to 'B'");
  });
});

describe('executionPath', () => {
  it('colours a failed rotation: the timed-out state caught, the retried one retried, the Fail state failed, the rest not reached', () => {
    // Prepare
    const graph = stateGraph(rotorDefinition());
    // Act
    const path = executionPath(graph, failedHistory(), 'FAILED');
    const outcome = (name: string): string => path.states[name].outcome;
    // Assess
    expect(outcome('Claim device')).toBe(StateOutcome.Succeeded);
    expect(outcome('Request CSR')).toBe(StateOutcome.Caught);
    expect(path.states['Request CSR'].retries).toBe(3);
    expect(path.states['Request CSR'].errors.map((e) => e.error)).toEqual(['States.Timeout', 'States.Timeout', 'States.Timeout', 'States.Timeout']);
    expect(outcome('Roll back')).toBe(StateOutcome.Retried);
    expect(outcome('Record failure')).toBe(StateOutcome.Succeeded);
    expect(outcome('Escalate')).toBe(StateOutcome.Succeeded);
    expect(outcome('Rotation failed')).toBe(StateOutcome.Failed);
    for (const name of ['Already rotating', 'Issue certificate', 'Deliver certificate', 'Retire old certificate', 'Rotated', 'Failure not recorded']) {
      expect([name, outcome(name)]).toEqual([name, StateOutcome.NotReached]);
    }
    expect(path.transitions.map((t) => `${t.from} → ${t.to}`)).toEqual([
      'Claim device → Request CSR',
      'Request CSR → Roll back',
      'Roll back → Record failure',
      'Record failure → Escalate',
      'Escalate → Rotation failed',
    ]);
  });

  it('shows a running execution\'s current state in progress, with its input and no output yet', () => {
    const graph = stateGraph(rotorDefinition());
    const events = [ev(1, 'ExecutionStarted'), entered(2, 'Claim device'), ev(3, 'TaskScheduled'), ev(4, 'TaskSucceeded'), exited(5, 'Claim device'), entered(6, 'Request CSR'), ev(7, 'TaskScheduled'), ev(8, 'TaskSubmitted')];
    const path = executionPath(graph, events, 'RUNNING');
    expect(path.states['Claim device']).toMatchObject({ outcome: StateOutcome.Succeeded, output: '{"ok":true}' });
    expect(path.states['Request CSR']).toMatchObject({ outcome: StateOutcome.InProgress, input: '{}', output: undefined, visits: 1 });
    expect(path.states['Issue certificate'].outcome).toBe(StateOutcome.NotReached);
  });

  it('fails the state an execution failed in when no Catch took its error, and one it was aborted in', () => {
    const graph = stateGraph({ StartAt: 'Work', States: { Work: { Type: 'Task', Resource: 'x', End: true } } });
    const failed = executionPath(graph, [entered(1, 'Work'), ev(2, 'TaskScheduled'), ev(3, 'TaskFailed', { taskFailedEventDetails: { error: 'Boom', cause: 'why' } }), ev(4, 'ExecutionFailed')], 'FAILED');
    expect(failed.states.Work).toMatchObject({ outcome: StateOutcome.Failed, errors: [{ error: 'Boom', cause: 'why', eventId: 3 }] });
    const aborted = executionPath(graph, [entered(1, 'Work'), ev(2, 'TaskScheduled'), ev(3, 'ExecutionAborted')], 'ABORTED');
    expect(aborted.states.Work.outcome).toBe(StateOutcome.Failed);
  });

  it('reads the events in id order, whatever order they come in', () => {
    const graph = stateGraph(rotorDefinition());
    const events = failedHistory();
    expect(executionPath(graph, [...events].reverse(), 'FAILED')).toEqual(executionPath(graph, events, 'FAILED'));
  });
});
