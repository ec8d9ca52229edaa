import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { MetricUnit as MetricUnitName } from '@aws-lambda-powertools/metrics/types';
import { Tracer } from '@aws-lambda-powertools/tracer';

/** CloudWatch namespace of every Rotor metric (EMF). */
export const METRICS_NAMESPACE = 'Rotor';

export const MetricName = {
  RotationsStarted: 'RotationsStarted',
  RotationsSucceeded: 'RotationsSucceeded',
  RotationsFailed: 'RotationsFailed',
  StepDuration: 'StepDuration',
  IgnoredMessages: 'IgnoredMessages',
} as const;
export type MetricName = (typeof MetricName)[keyof typeof MetricName];

export type LogAttributes = Record<string, unknown>;

/** What core functions log through: structured, one attributes object per line. */
export interface LogSink {
  debug(message: string, attributes?: LogAttributes): void;
  info(message: string, attributes?: LogAttributes): void;
  warn(message: string, attributes?: LogAttributes): void;
  error(message: string, attributes?: LogAttributes): void;
}

/**
 * The observability a core function needs, as an interface so tests record what happened
 * instead of parsing stdout. Metrics with dimensions are emitted at once (each carries its
 * own dimension set); plain counters are flushed by the logMetrics middleware.
 */
export interface Telemetry {
  readonly log: LogSink;
  count(metric: MetricName, value?: number, dimensions?: Record<string, string>): void;
  milliseconds(metric: MetricName, value: number, dimensions?: Record<string, string>): void;
}

export interface Observability {
  logger: Logger;
  metrics: Metrics;
  tracer: Tracer;
  telemetry: Telemetry;
}

type PowertoolsLevel = 'DEBUG' | 'INFO' | 'WARN' | 'ERROR' | 'SILENT' | 'CRITICAL' | 'TRACE';
const LEVELS: readonly string[] = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'CRITICAL', 'SILENT'];

function logLevel(value: string | undefined): PowertoolsLevel {
  const upper = (value ?? 'INFO').toUpperCase();
  return (LEVELS.includes(upper) ? upper : 'INFO') as PowertoolsLevel;
}

function sink(logger: Logger): LogSink {
  return {
    debug: (message, attributes) => (attributes ? logger.debug(message, attributes) : logger.debug(message)),
    info: (message, attributes) => (attributes ? logger.info(message, attributes) : logger.info(message)),
    warn: (message, attributes) => (attributes ? logger.warn(message, attributes) : logger.warn(message)),
    error: (message, attributes) => (attributes ? logger.error(message, attributes) : logger.error(message)),
  };
}

function emit(metrics: Metrics, metric: MetricName, unit: MetricUnitName, value: number, dimensions?: Record<string, string>): void {
  if (!dimensions || Object.keys(dimensions).length === 0) {
    metrics.addMetric(metric, unit, value);
    return;
  }
  const single = metrics.singleMetric();
  for (const [name, dimension] of Object.entries(dimensions)) single.addDimension(name, dimension);
  single.addMetric(metric, unit, value);
}

/** Powertools logger, metrics and tracer of one function, plus the Telemetry view of them. */
export function observability(serviceName: string, level: string | undefined = process.env.LOG_LEVEL): Observability {
  const logger = new Logger({ serviceName, logLevel: logLevel(level) });
  const metrics = new Metrics({
    namespace: METRICS_NAMESPACE,
    serviceName,
    // Most of Rotor's metrics carry a dimension and are emitted on their own, so an invocation
    // with no plain counter is normal: its "no application metrics" warning is only debug noise.
    logger: {
      debug: (message: string) => logger.debug(message),
      info: (message: string) => logger.info(message),
      warn: (message: string) => (/^No application metrics/.test(message) ? logger.debug(message) : logger.warn(message)),
      error: (message: string) => logger.error(message),
    },
  });
  const tracer = new Tracer({ serviceName });
  const telemetry: Telemetry = {
    log: sink(logger),
    count: (metric, value = 1, dimensions) => emit(metrics, metric, MetricUnit.Count, value, dimensions),
    milliseconds: (metric, value, dimensions) => emit(metrics, metric, MetricUnit.Milliseconds, value, dimensions),
  };
  return { logger, metrics, tracer, telemetry };
}
