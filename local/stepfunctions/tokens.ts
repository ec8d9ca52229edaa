import { randomBytes } from 'node:crypto';
import { AwsError } from '../types.js';

/**
 * Task tokens of `.waitForTaskToken` tasks. A token is opaque, unguessable and long like
 * AWS's; it stays known after its task closes so that a late answer gets TaskTimedOut (what
 * AWS says for a token whose task timed out, was answered, or whose execution ended)
 * rather than TaskDoesNotExist (a well-formed token this service never issued).
 */

export type TokenAnswer =
  | { kind: 'success'; output: unknown }
  | { kind: 'failure'; error: string; cause: string };

interface OpenTask {
  state: 'open';
  resolve: (answer: TokenAnswer) => void;
  onHeartbeat: () => void;
}

type TaskEntry = OpenTask | { state: 'closed' };

const TOKEN_PREFIX = 'AQ';
const TOKEN_SHAPE = /^AQ[A-Za-z0-9_-]{200,}$/;
/** AWS's taskToken length limit. */
const MAX_TOKEN_LENGTH = 2048;

export interface WaitingTask {
  token: string;
  /** Settles with the answer, even if it came before anyone awaited it. */
  answer: Promise<TokenAnswer>;
  close(): void;
}

export class TaskTokens {
  private readonly tasks = new Map<string, TaskEntry>();

  open(onHeartbeat: () => void): WaitingTask {
    const token = TOKEN_PREFIX + randomBytes(192).toString('base64url');
    let resolve!: (answer: TokenAnswer) => void;
    const answer = new Promise<TokenAnswer>((r) => {
      resolve = r;
    });
    this.tasks.set(token, { state: 'open', resolve, onHeartbeat });
    return { token, answer, close: () => this.tasks.set(token, { state: 'closed' }) };
  }

  private lookup(token: unknown): OpenTask {
    if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
      throw new AwsError('ValidationException', 'taskToken must be a string of 1 to 2048 characters');
    }
    if (!TOKEN_SHAPE.test(token)) throw new AwsError('InvalidToken', 'Invalid Token: the task token is malformed');
    const entry = this.tasks.get(token);
    if (!entry) throw new AwsError('TaskDoesNotExist', 'Task does not exist: no task was issued this token');
    if (entry.state === 'closed') throw new AwsError('TaskTimedOut', 'Task Timed Out: Provided task does not exist anymore');
    return entry;
  }

  answer(token: unknown, answer: TokenAnswer): void {
    const task = this.lookup(token);
    this.tasks.set(token as string, { state: 'closed' });
    task.resolve(answer);
  }

  heartbeat(token: unknown): void {
    this.lookup(token).onHeartbeat();
  }
}
