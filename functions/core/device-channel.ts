import { PublishCommand, type IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { encodeCloudMessage, topicFor, trustTopicFor, type CloudMessage, type TrustMessageType, type TrustRequest } from '../../domain/index.js';

const encoder = new TextEncoder();

/**
 * Publishes one cloud → device message (PROTOCOL.md: JSON, QoS 1, never retained) on the
 * thing's own topic. Devices use persistent sessions, so a device that is offline gets it
 * when it comes back.
 */
export async function publishToDevice(iotData: IoTDataPlaneClient, thingName: string, message: CloudMessage): Promise<void> {
  await iotData.send(
    new PublishCommand({
      topic: topicFor(thingName, message.type),
      qos: 1,
      payload: encoder.encode(encodeCloudMessage(message)),
    }),
  );
}

/**
 * Publishes a protocol v1.2 trust-store message (trust_req) on the thing's own topic, QoS 1 like
 * the rotation's. Kept apart from publishToDevice: trust messages are not rotation messages.
 */
export async function publishTrustToDevice(iotData: IoTDataPlaneClient, thingName: string, message: { type: typeof TrustMessageType.TrustRequest; body: TrustRequest }): Promise<void> {
  await iotData.send(
    new PublishCommand({
      topic: trustTopicFor(thingName, message.type),
      qos: 1,
      payload: encoder.encode(JSON.stringify(message.body)),
    }),
  );
}
