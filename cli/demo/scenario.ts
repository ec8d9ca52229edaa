/**
 * What `rotor demo --scenario` runs, and the time scale each runs at when `--time-scale` is not
 * given: one home for both, so the command line, the runners and their tests agree.
 */

/** The scenarios `rotor demo --scenario` runs; `rotation` is the audit-driven demo. */
export const DemoScenario = {
  Rotation: 'rotation',
  CaRollover: 'ca-rollover',
  TrustStore: 'trust-store',
} as const;
export type DemoScenario = (typeof DemoScenario)[keyof typeof DemoScenario];

/** The rotation demo's time scale: a 900 s ack timeout lasts 9 s. */
export const DEFAULT_TIME_SCALE = 0.01;

/**
 * The ca-rollover scenario's. Its fleet rotates with the local Private CA and the rollover's own
 * steps share the runtime with it, so at 0.01 (a 9 s ack timeout) a loaded machine (load ~30)
 * left 3 of 20 devices NO_ACK and CA-1 ACTIVE; 0.05 gave 20 of 20 moved on the same machine.
 * The waits are ceilings, so a fleet that answers does not take longer.
 */
export const CA_ROLLOVER_TIME_SCALE = 0.05;

/**
 * The trust-store scenario's. One trust_req waits 900 s × the scale for its answer, and an
 * answer crosses two queued Lambdas and a TLS reconnect: on a loaded machine (load 30) that took
 * 4–10 s, so at 0.01 (a 9 s wait) 1 of 40 devices and all of 100 were reported NO_ACK while
 * acking late. At 0.1 no well-behaved device waits out a timeout, so the scale does not lengthen
 * the run; only a device that never answers would.
 */
export const TRUST_STORE_TIME_SCALE = 0.1;

/**
 * With `--quotas`: the quotas are AWS's real rates, and rates are divided by the time scale, so
 * only at 1 do they mean the account's (docs/fleet-scale.md). At 0.01 `--devices 1000 --quotas
 * aws-default` throttled nothing and failed 999 rotations on the shortened CSR and ack timeouts,
 * which the local runtime's queues outlast.
 */
export const QUOTAS_TIME_SCALE = 1;

/** The time scale a run uses when `--time-scale` is not given. */
export function defaultTimeScale(scenario: DemoScenario, quotas: string | undefined): number {
  if (quotas) return QUOTAS_TIME_SCALE;
  switch (scenario) {
    case DemoScenario.Rotation:
      return DEFAULT_TIME_SCALE;
    case DemoScenario.CaRollover:
      return CA_ROLLOVER_TIME_SCALE;
    case DemoScenario.TrustStore:
      return TRUST_STORE_TIME_SCALE;
  }
}

/** `--time-scale`'s help: every default, from defaultTimeScale's constants. */
export function timeScaleHelp(): string {
  return `workflow time scale; unless given: ${DEFAULT_TIME_SCALE} (rotation), ${CA_ROLLOVER_TIME_SCALE} (ca-rollover), ${TRUST_STORE_TIME_SCALE} (trust-store), ${QUOTAS_TIME_SCALE} with --quotas (AWS's real rates)`;
}
