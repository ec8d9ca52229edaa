import { AwsError, type EdgeRequest, type EdgeResponse, type LocalService } from '../types.js';
import type { MqttBroker } from './broker.js';
import { compileRoutes, dispatchRoute, routeOperation, queryBoolean, queryInteger } from './rest-json.js';

/**
 * The IoT data plane (signing name 'iotdata'): Publish puts a message into the local broker,
 * where subscribed devices receive it (or get it queued in their persistent session) and the
 * rules engine sees it, as on AWS.
 */
export class IotDataPlane implements LocalService {
  readonly signingNames = ['iotdata'] as const;
  private readonly routes;
  private readonly calls = new Map<string, number>();

  constructor(private readonly broker: () => MqttBroker) {
    this.routes = compileRoutes([
      {
        operation: 'Publish',
        method: 'POST',
        path: '/topics/{topic}',
        rawBody: true,
        handler: async ({ request, params }) => {
          const topic = params.topic;
          if (topic.length === 0 || topic.includes('+') || topic.includes('#')) {
            throw new AwsError('InvalidRequestException', `cannot publish to ${JSON.stringify(topic)}: a topic name, not a filter, is required`);
          }
          const qos = queryInteger(request.query, 'qos', 0, 1) ?? 0;
          const retain = queryBoolean(request.query, 'retain') ?? false;
          await this.broker().publish(topic, request.body, qos as 0 | 1, retain);
        },
      },
    ]);
  }

  operationOf(request: EdgeRequest): string | undefined {
    return routeOperation(this.routes, request);
  }

  async handle(request: EdgeRequest): Promise<EdgeResponse> {
    const response = await dispatchRoute(this.routes, request, (operation) => this.calls.set(operation, (this.calls.get(operation) ?? 0) + 1));
    // Publish answers 200 with an empty body (the SDK expects no JSON document).
    return response.status === 200 ? { status: 200, headers: {}, body: '' } : response;
  }

  callCounts(): Record<string, number> {
    return Object.fromEntries(this.calls);
  }

  resetCallCounts(): void {
    this.calls.clear();
  }
}
