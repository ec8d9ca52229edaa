/**
 * The local runtime's log seam. The edge logs one line per request at debug level; the
 * services log what a person running `rotor local up` would want to see. Lines are JSON so
 * that they read like the functions' Powertools logs next to them.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

export interface LocalLogger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export function isLogLevel(value: string): value is LogLevel {
  return value in ORDER;
}

/** A logger writing JSON lines to a stream (stderr by default, so stdout stays for command output). */
export function streamLogger(level: LogLevel = 'info', stream: NodeJS.WritableStream = process.stderr, component = 'local'): LocalLogger {
  const write = (at: Exclude<LogLevel, 'silent'>, message: string, fields?: Record<string, unknown>): void => {
    if (ORDER[at] < ORDER[level]) return;
    stream.write(`${JSON.stringify({ level: at.toUpperCase(), timestamp: new Date().toISOString(), component, message, ...fields })}\n`);
  };
  return {
    debug: (message, fields) => write('debug', message, fields),
    info: (message, fields) => write('info', message, fields),
    warn: (message, fields) => write('warn', message, fields),
    error: (message, fields) => write('error', message, fields),
  };
}

export const silentLogger: LocalLogger = streamLogger('silent');
