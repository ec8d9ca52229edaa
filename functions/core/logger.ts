import type { Context } from 'aws-lambda';

/**
 * Structured JSON logs, one object per line on stdout, with the field names of Powertools'
 * logger (level, message, timestamp, service, cold_start, function_*, xray_trace_id) so that
 * CloudWatch Logs Insights queries written for it keep working. In-repo rather than Powertools:
 * its logger, metrics and tracer (with aws-xray-sdk-core) were a third of every bundle.
 */
export const LogLevel = { DEBUG: 10, INFO: 20, WARN: 30, ERROR: 40, SILENT: 100 } as const;
export type LogLevelName = keyof typeof LogLevel;

export type LogAttributes = Record<string, unknown>;

/**
 * Keys whose values never reach a log line, at any depth: a task token lets anyone holding it
 * complete the rotation's step, and a CSR or a key is the device's. Core functions do not log
 * them; this guards the next change that logs a whole event.
 */
export const REDACTED_KEYS: readonly string[] = ['taskToken', 'csr', 'csrPem', 'certificateSigningRequest', 'privateKey', 'keyPem', 'privateKeyPem'];
const REDACTED = '[redacted]';

/** LOG_LEVEL, then Lambda's own AWS_LAMBDA_LOG_LEVEL (advanced logging controls), then INFO. */
export function logLevelOf(value: string | undefined = process.env.LOG_LEVEL ?? process.env.AWS_LAMBDA_LOG_LEVEL): LogLevelName {
  const upper = (value ?? 'INFO').toUpperCase();
  if (upper === 'TRACE') return 'DEBUG';
  if (upper === 'CRITICAL' || upper === 'FATAL') return 'ERROR';
  return upper in LogLevel ? (upper as LogLevelName) : 'INFO';
}

function serialise(value: unknown, depth: number): unknown {
  if (value instanceof Error) {
    return { name: value.name, message: value.message, stack: value.stack, ...(value.cause !== undefined && depth < 4 ? { cause: serialise(value.cause, depth + 1) } : {}) };
  }
  if (depth >= 8 || typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map((item) => serialise(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) out[key] = REDACTED_KEYS.includes(key) ? REDACTED : serialise(item, depth + 1);
  return out;
}

export interface LoggerOptions {
  serviceName: string;
  level?: LogLevelName;
  /** Where a line goes; stdout by default (Lambda sends it to CloudWatch Logs). */
  write?: (line: string) => void;
  now?: () => Date;
}

export class StructuredLogger {
  private readonly threshold: number;
  private readonly write: (line: string) => void;
  private readonly now: () => Date;
  private context: LogAttributes = {};
  private keys: LogAttributes = {};
  private invocations = 0;

  constructor(private readonly options: LoggerOptions) {
    this.threshold = LogLevel[options.level ?? logLevelOf()];
    this.write = options.write ?? ((line) => process.stdout.write(`${line}\n`));
    this.now = options.now ?? (() => new Date());
  }

  /** The Lambda context of the invocation on every line; the first invocation is the cold start. */
  addContext(context: Context): void {
    this.invocations += 1;
    this.context = {
      cold_start: this.invocations === 1,
      function_arn: context.invokedFunctionArn,
      function_memory_size: Number(context.memoryLimitInMB),
      function_name: context.functionName,
      function_request_id: context.awsRequestId,
    };
  }

  /** Keys on every line until resetKeys (the end of the invocation). */
  appendKeys(keys: LogAttributes): void {
    this.keys = { ...this.keys, ...keys };
  }

  resetKeys(): void {
    this.keys = {};
    this.context = {};
  }

  debug(message: string, attributes?: LogAttributes): void {
    this.log('DEBUG', message, attributes);
  }

  info(message: string, attributes?: LogAttributes): void {
    this.log('INFO', message, attributes);
  }

  warn(message: string, attributes?: LogAttributes): void {
    this.log('WARN', message, attributes);
  }

  error(message: string, attributes?: LogAttributes): void {
    this.log('ERROR', message, attributes);
  }

  private log(level: Exclude<LogLevelName, 'SILENT'>, message: string, attributes?: LogAttributes): void {
    if (LogLevel[level] < this.threshold) return;
    const traceId = /Root=([^;]+)/.exec(process.env._X_AMZN_TRACE_ID ?? '')?.[1];
    const line = serialise(
      {
        level,
        message,
        timestamp: this.now().toISOString(),
        service: this.options.serviceName,
        ...this.context,
        ...(traceId ? { xray_trace_id: traceId } : {}),
        ...this.keys,
        ...attributes,
      },
      0,
    );
    let text: string;
    try {
      text = JSON.stringify(line);
    } catch (error) {
      // A circular or BigInt attribute must not cost the line itself.
      text = JSON.stringify({ level, message, timestamp: this.now().toISOString(), service: this.options.serviceName, log_error: (error as Error).message });
    }
    this.write(text);
  }
}
