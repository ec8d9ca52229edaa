import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { CURRENT_SK, thingPk } from '../../../domain/index.js';
import type { LocalAws } from '../../../local/runtime.js';
import { checkFleet, type CheckFailure } from '../fleet-checks.js';
import type { DemoReport } from '../figures.js';
import { mqttEndpoint, type DemoDevice } from './provision.js';

/** Escalation messages per thing, read off the escalation topic as a subscriber would see them. */
export function escalationsByThing(runtime: LocalAws): { total: number; byThing: Map<string, number> } {
  const messages = runtime.sns.messages(runtime.endpoints.topics.escalation);
  const byThing = new Map<string, number>();
  for (const message of messages) {
    let thing = '(unreadable message)';
    try {
      thing = String((JSON.parse(message.message) as { thingName?: unknown }).thingName);
    } catch {
      // Counted under a name no device has, so the per-device check still sees it missing.
    }
    byThing.set(thing, (byThing.get(thing) ?? 0) + 1);
  }
  return { total: messages.length, byThing };
}

/**
 * Phase 5: the end checks against the registry, the devices' own key stores, the rotation table
 * and the escalation topic. The devices must be disconnected first: the checks probe with their
 * client ids.
 */
export async function checkOutcome(
  runtime: LocalAws,
  input: { devices: readonly DemoDevice[]; outcomes: DemoReport['outcomes']; escalations: ReadonlyMap<string, number>; cutOff?: ReadonlySet<string> },
): Promise<CheckFailure[]> {
  const db = DynamoDBDocumentClient.from(
    new DynamoDBClient({ endpoint: runtime.endpoints.awsEndpoint, region: runtime.endpoints.region, credentials: { accessKeyId: 'demo', secretAccessKey: 'demo' } }),
  );
  try {
    return await checkFleet({
      registry: runtime.iot.registry,
      devices: input.devices.map((d) => ({
        thingName: d.thingName,
        stateDir: d.stateDir,
        provisioned: { keyPem: d.keyPem, certPem: d.certPem, certificateId: d.certificateId },
        outcome: input.outcomes[d.thingName].outcome,
      })),
      mqtt: mqttEndpoint(runtime),
      currentRecord: async (thingName) => {
        const { Item } = await db.send(new GetCommand({ TableName: runtime.endpoints.tableName, Key: { pk: thingPk(thingName), sk: CURRENT_SK } }));
        return Item as { status?: string; reason?: string } | undefined;
      },
      escalations: input.escalations,
      cutOff: input.cutOff ?? new Set(),
      retireMode: String(runtime.deployment.settings.retireMode),
    });
  } finally {
    db.destroy();
  }
}
