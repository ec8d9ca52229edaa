/**
 * Exit codes a script can rely on (docs/operations.md lists them). "Nothing to do" is a
 * success: a cron job that retries failed devices must not page anyone when there are none.
 */
export const ExitCode = {
  Ok: 0,
  /** Something was tried and did not work: an AWS call failed, some retries could not start. */
  Failure: 1,
  /** The command line is wrong: unknown option, conflicting flags, a bad value. */
  Usage: 2,
  /** What was asked about does not exist: unknown thing, execution, table or state machine. */
  NotFound: 3,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** An error meant for the operator: its message is printed as one line, its code is the exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'CliError';
  }
}

export class UsageError extends CliError {
  constructor(message: string) {
    super(message, ExitCode.Usage);
    this.name = 'UsageError';
  }
}

export class NotFoundError extends CliError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.NotFound, options);
    this.name = 'NotFoundError';
  }
}

/** What the operator was talking to, so an AWS error can say which table or endpoint it means. */
export interface ErrorContext {
  tableName?: string;
  region?: string;
  endpoint?: string;
}

interface ErrorLike {
  name?: unknown;
  message?: unknown;
  code?: unknown;
  cause?: unknown;
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'ECONNRESET', 'EHOSTUNREACH', 'ETIMEDOUT', 'EAI_AGAIN']);

function networkCode(error: ErrorLike, depth = 0): string | undefined {
  if (typeof error.code === 'string' && NETWORK_CODES.has(error.code)) return error.code;
  // Node's fetch/http wrap the socket error; AggregateError (happy eyeballs) holds several.
  if (depth < 3 && error.cause && typeof error.cause === 'object') return networkCode(error.cause as ErrorLike, depth + 1);
  const errors = (error as { errors?: unknown }).errors;
  if (depth < 3 && Array.isArray(errors) && errors[0] && typeof errors[0] === 'object') {
    return networkCode(errors[0] as ErrorLike, depth + 1);
  }
  return undefined;
}

/**
 * Turns any error into the one line the operator reads and the exit code a script reads.
 * Never a stack trace: the cause is named, with the flag that fixes it where there is one.
 */
export function describeError(error: unknown, context: ErrorContext = {}): { message: string; exitCode: ExitCode } {
  if (error instanceof CliError) return { message: error.message, exitCode: error.exitCode };
  const e = (typeof error === 'object' && error !== null ? error : { message: String(error) }) as ErrorLike;
  const name = typeof e.name === 'string' ? e.name : 'Error';
  const message = typeof e.message === 'string' ? e.message.split('\n')[0] : String(error);
  const where = context.region ? ` in ${context.region}` : '';

  const network = networkCode(e);
  if (network) {
    return { message: `cannot reach ${context.endpoint ?? `AWS${where}`} (${network})`, exitCode: ExitCode.Failure };
  }
  switch (name) {
    case 'CredentialsProviderError':
      return {
        message: 'no AWS credentials found: set AWS_PROFILE or pass --profile, or run against the local runtime with --local',
        exitCode: ExitCode.Failure,
      };
    case 'ExpiredTokenException':
    case 'ExpiredToken':
      return { message: `AWS credentials have expired: ${message}`, exitCode: ExitCode.Failure };
    case 'UnrecognizedClientException':
    case 'InvalidSignatureException':
      return { message: `AWS rejected the credentials${where}: ${message}`, exitCode: ExitCode.Failure };
    case 'AccessDeniedException':
    case 'AccessDenied':
      return { message: `access denied: ${message}`, exitCode: ExitCode.Failure };
    case 'ResourceNotFoundException':
      if (context.tableName) {
        return {
          message: `table ${context.tableName} not found${where}: pass --table NAME or --name-prefix PREFIX (${message})`,
          exitCode: ExitCode.NotFound,
        };
      }
      return { message: `not found: ${message}`, exitCode: ExitCode.NotFound };
    case 'ExecutionDoesNotExist':
    case 'StateMachineDoesNotExist':
    case 'InvalidArn':
      return { message: `${name}: ${message}`, exitCode: ExitCode.NotFound };
    default:
      return { message: `${name}: ${message}`, exitCode: ExitCode.Failure };
  }
}
