import type { LocalLogger } from '../edge/logger.js';

/**
 * An EventBridge schedule, in process (terraform/calendar.tf): invokes a function asynchronously
 * with a constant input every `periodMs` of real time (AWS's period × the time scale). As with
 * EventBridge, an invocation is not skipped because the last one is still running: the function
 * decides (the calendar's sweep holds a lease).
 */
export interface ScheduleOptions {
  invoker: { invoke(functionName: string, payload: unknown, invocationType: 'Event'): Promise<unknown> };
  functionName: string;
  periodMs: number;
  input: unknown;
  logger: LocalLogger;
}

export interface Schedule {
  stop(): void;
}

export function startSchedule(options: ScheduleOptions): Schedule {
  const timer = setInterval(() => {
    options.invoker.invoke(options.functionName, options.input, 'Event').catch((error: unknown) => {
      options.logger.warn('scheduled invocation failed', { function: options.functionName, error: error instanceof Error ? error.message : String(error) });
    });
  }, Math.max(10, options.periodMs));
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
