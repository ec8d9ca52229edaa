import { logLevelOf, StructuredLogger, type LogAttributes } from './logger.js';
import { EmfMetrics, MetricUnit } from './metrics.js';
import { XRayTracer } from './tracer.js';

/** CloudWatch namespace of every Rotor metric (EMF). */
export const METRICS_NAMESPACE = 'Rotor';

export const MetricName = {
  RotationsStarted: 'RotationsStarted',
  RotationsSucceeded: 'RotationsSucceeded',
  RotationsFailed: 'RotationsFailed',
  StepDuration: 'StepDuration',
  IgnoredMessages: 'IgnoredMessages',
  /** An SDK call AWS throttled (each attempt), dimension `Api` = the pacing bucket (docs/fleet-scale.md). */
  ThrottledCalls: 'ThrottledCalls',
  /** A paced step's allowed rate after AIMD, calls per second, dimension `Bucket`. */
  PacingRate: 'PacingRate',
  /** How long a paced step's calls waited for the budget. */
  PacingWaitMs: 'PacingWaitMs',
  /** fleet-gauge: IN_PROGRESS records now. */
  RotationsInFlight: 'RotationsInFlight',
  /** fleet-gauge: seconds since the oldest in-flight rotation started (unit Count: EMF here has no Seconds). */
  OldestInFlightAgeSeconds: 'OldestInFlightAgeSeconds',
  /** Trust-store updates (protocol v1.2) the device acked: its bundle is the pushed one. */
  TrustUpdatesUpdated: 'TrustUpdatesUpdated',
  /** Trust-store updates the device refused with trust_err, dimension `reason` = TRUST_<code>. */
  TrustUpdatesRefused: 'TrustUpdatesRefused',
  /** Trust-store updates with no answer (NO_ACK) or an internal failure, dimension `reason`. */
  TrustUpdatesNotUpdated: 'TrustUpdatesNotUpdated',
  /** trust_ack / trust_err messages device-message could not act on, dimension `reason` (the rotation's are IgnoredMessages). */
  TrustMessagesIgnored: 'TrustMessagesIgnored',
  /** trust_ack messages that counted but came after their update timed out: the device switched all the same. */
  TrustAcksLate: 'TrustAcksLate',
} as const;
export type MetricName = (typeof MetricName)[keyof typeof MetricName];

export type { LogAttributes };

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
 * own dimension set); plain counters are flushed by the emfMetrics middleware.
 */
export interface Telemetry {
  readonly log: LogSink;
  count(metric: MetricName, value?: number, dimensions?: Record<string, string>): void;
  milliseconds(metric: MetricName, value: number, dimensions?: Record<string, string>): void;
}

export interface Observability {
  logger: StructuredLogger;
  metrics: EmfMetrics;
  tracer: XRayTracer;
  telemetry: Telemetry;
}

function emit(metrics: EmfMetrics, metric: MetricName, unit: MetricUnit, value: number, dimensions?: Record<string, string>): void {
  if (dimensions && Object.keys(dimensions).length > 0) metrics.single(metric, unit, value, dimensions);
  else metrics.add(metric, unit, value);
}

/**
 * The structured logger, EMF metrics and X-Ray tracer of one function (in-repo, see
 * logger.ts), plus the Telemetry view of them that core functions use.
 */
export function observability(serviceName: string, level: string | undefined = process.env.LOG_LEVEL ?? process.env.AWS_LAMBDA_LOG_LEVEL): Observability {
  const logger = new StructuredLogger({ serviceName, level: logLevelOf(level) });
  const metrics = new EmfMetrics({ namespace: METRICS_NAMESPACE, serviceName });
  const tracer = new XRayTracer({ serviceName });
  const telemetry: Telemetry = {
    log: logger,
    count: (metric, value = 1, dimensions) => emit(metrics, metric, MetricUnit.Count, value, dimensions),
    milliseconds: (metric, value, dimensions) => emit(metrics, metric, MetricUnit.Milliseconds, value, dimensions),
  };
  return { logger, metrics, tracer, telemetry };
}
