import middy, { type MiddyfiedHandler } from '@middy/core';
import type { Context } from 'aws-lambda';
import { emfMetrics } from '../middleware/emf-metrics.js';
import { lambdaContext } from '../middleware/lambda-context.js';
import { rotationLogKeys, type LogKeyPicker } from '../middleware/rotation-log-keys.js';
import { stepDuration } from '../middleware/step-duration.js';
import { traceHandler } from '../middleware/trace-handler.js';
import type { Observability } from './telemetry.js';

export interface HandlerOptions<TEvent> {
  observability: Observability;
  /** The step reported in StepDuration: the ASL state, or the function's role. */
  step: string;
  logKeys: LogKeyPicker<TEvent>;
}

/**
 * The one middleware stack every Rotor function runs in: the X-Ray handler subsegment, the
 * Lambda context and the rotation's identity on every log line (keys reset after each
 * invocation), EMF metrics flushed at the end, and the step's duration.
 */
export function rotorHandler<TEvent, TResult>(
  options: HandlerOptions<TEvent>,
  run: (event: TEvent, context: Context) => Promise<TResult>,
): MiddyfiedHandler<TEvent, TResult> {
  const { logger, metrics, tracer, telemetry } = options.observability;
  const base = (event: TEvent, context: Context): Promise<TResult> => run(event, context);
  return middy<TEvent, TResult>(base)
    .use(traceHandler<TEvent>(tracer, options.logKeys))
    .use(lambdaContext<TEvent>(logger))
    .use(rotationLogKeys<TEvent>(logger, options.logKeys))
    .use(emfMetrics<TEvent>(metrics))
    .use(stepDuration<TEvent>(telemetry, options.step));
}

/** Log keys of a state-machine task input: `{thingName, rotationId}` at the top level. */
export function taskLogKeys(event: unknown): Record<string, string | undefined> {
  const fields = (typeof event === 'object' && event !== null ? event : {}) as Record<string, unknown>;
  const rotation = (typeof fields.rotation === 'object' && fields.rotation !== null ? fields.rotation : {}) as Record<string, unknown>;
  const text = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);
  return { thingName: text(fields.thingName) ?? text(rotation.thingName), rotationId: text(fields.rotationId) };
}

/**
 * Builds a function's runtime dependencies on first use and keeps them for the life of the
 * execution environment. Deferred rather than at import time so that tests import the core
 * function without the handler's environment.
 */
export function once<T>(build: () => T): () => T {
  let built: { value: T } | undefined;
  return () => (built ??= { value: build() }).value;
}
