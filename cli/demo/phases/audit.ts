import { IoTClient, StartOnDemandAuditTaskCommand } from '@aws-sdk/client-iot';
import { auditExecutionName } from '../../../domain/index.js';
import type { LocalAws } from '../../../local/runtime.js';
import type { DemoDevice } from './provision.js';
import { DemoError } from './waiting.js';

export interface StartedAudit {
  taskId: string;
  startedAt: number;
  /** thing name → the execution the audit's notification starts for it (its name is the rotation id). */
  executionArns: Map<string, string>;
}

/**
 * Phase 2: run the Device Defender audit the way an operator would (StartOnDemandAuditTask over
 * the public API); its completion notification is what starts Rotor. The execution each device
 * will get is known in advance, since rotation ids are deterministic.
 */
export async function startAudit(runtime: LocalAws, devices: readonly DemoDevice[]): Promise<StartedAudit> {
  const checks = String(runtime.deployment.settings.auditChecks)
    .split(',')
    .map((c) => c.trim())
    .filter(Boolean);
  const iot = new IoTClient({ endpoint: runtime.endpoints.awsEndpoint, region: runtime.endpoints.region, credentials: { accessKeyId: 'demo', secretAccessKey: 'demo' } });
  const startedAt = Date.now();
  let taskId: string;
  try {
    const started = await iot.send(new StartOnDemandAuditTaskCommand({ targetCheckNames: checks }));
    if (!started.taskId) throw new DemoError('StartOnDemandAuditTask returned no task id');
    taskId = started.taskId;
  } finally {
    iot.destroy();
  }
  const executionPrefix = `${runtime.endpoints.stateMachineArn.replace(':stateMachine:', ':execution:')}:`;
  const executionArns = new Map(devices.map((d) => [d.thingName, executionPrefix + auditExecutionName(d.thingName, d.certificateId, taskId)]));
  return { taskId, startedAt, executionArns };
}
