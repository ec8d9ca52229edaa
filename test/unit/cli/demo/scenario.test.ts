import { Command } from 'commander';
import { registerDemoCommand } from '../../../../cli/demo/index';
import { CA_ROLLOVER_TIME_SCALE, DEFAULT_TIME_SCALE, DemoScenario, defaultTimeScale, QUOTAS_TIME_SCALE, TRUST_STORE_TIME_SCALE } from '../../../../cli/demo/scenario';

describe('the demo time scale when --time-scale is not given', () => {
  it.each([
    [DemoScenario.Rotation, DEFAULT_TIME_SCALE, 0.01],
    [DemoScenario.CaRollover, CA_ROLLOVER_TIME_SCALE, 0.05],
    [DemoScenario.TrustStore, TRUST_STORE_TIME_SCALE, 0.1],
  ])('runs %s at its own scale without quotas', (scenario, constant, value) => {
    // Act / Assess
    expect(defaultTimeScale(scenario, undefined)).toBe(value);
    expect(constant).toBe(value);
  });

  it.each([DemoScenario.Rotation, DemoScenario.CaRollover])('runs %s at 1 with --quotas: the quotas are AWS real rates, divided by the scale', (scenario) => {
    // Act / Assess
    expect(QUOTAS_TIME_SCALE).toBe(1);
    expect(defaultTimeScale(scenario, 'aws-default')).toBe(1);
    expect(defaultTimeScale(scenario, '/tmp/quotas.json')).toBe(1);
  });

  it('treats an empty --quotas as none', () => {
    // Act / Assess
    expect(defaultTimeScale(DemoScenario.Rotation, '')).toBe(DEFAULT_TIME_SCALE);
  });

  it("names every default in --time-scale's help", () => {
    // Prepare
    const program = new Command('rotor');
    registerDemoCommand(program, { out: () => undefined, progressStream: process.stdout, tty: false });
    const demo = program.commands.find((c) => c.name() === 'demo') as Command;
    // Act
    const option = demo.options.find((o) => o.long === '--time-scale');
    // Assess: no commander default, so an explicit value is the only thing that overrides defaultTimeScale.
    expect(option?.defaultValue).toBeUndefined();
    expect(option?.description).toBe('workflow time scale; unless given: 0.01 (rotation), 0.05 (ca-rollover), 0.1 (trust-store), 1 with --quotas (AWS\'s real rates)');
  });
});
