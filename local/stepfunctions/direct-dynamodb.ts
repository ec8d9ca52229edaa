import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { FinalizeRequestMiddleware, MetadataBearer } from '@smithy/types';
import type { CallSource } from '../edge/edge-server.js';

/**
 * The workflow engine's DynamoDB client (the ASL's `dynamodb:updateItem` tasks, as Claim
 * device). Through the edge, each such call crossed the runtime's main thread three times: the
 * engine's request into the edge, the edge's proxy to DynamoDB Local, and both answers back.
 * This client sends it straight to DynamoDB Local and counts it here, with the edge's own counts
 * (`edge.countAlso`), so `/_rotor/calls` and the demo's API calls per rotation stay the same —
 * as the Lambda workers' direct path does (local/dynamodb/direct-path.ts).
 *
 * While `viaEdge()` says so (a throttle fault for DynamoDB is pending), a call goes through the
 * edge again, where the fault is taken and the call counted.
 */
export interface DirectDynamoDbOptions {
  /** DynamoDB Local. */
  upstream: string;
  /** The edge, for the calls it must see. */
  edge: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  viaEdge: () => boolean;
}

export class DirectDynamoDb implements CallSource {
  readonly client: DynamoDBClient;
  private readonly counts = new Map<string, number>();

  constructor(options: DirectDynamoDbOptions) {
    this.client = new DynamoDBClient({ endpoint: options.upstream, region: options.region, credentials: options.credentials });
    const edge = new URL(options.edge);
    const upstream = new URL(options.upstream);
    const redirect: FinalizeRequestMiddleware<object, MetadataBearer> = (next, context) => async (args) => {
      // Decided per attempt: a retry after a throttle fault was used up goes direct again.
      const target = options.viaEdge() ? edge : upstream;
      const request = args.request as { hostname?: string; port?: number; protocol?: string; headers?: Record<string, string> };
      request.hostname = target.hostname;
      request.port = Number(target.port);
      request.protocol = target.protocol;
      if (request.headers?.host !== undefined) request.headers.host = target.host;
      if (target === upstream) {
        const operation = `dynamodb:${String(context.commandName).replace(/Command$/, '')}`;
        this.counts.set(operation, (this.counts.get(operation) ?? 0) + 1);
      }
      return next(args);
    };
    // Inside the SDK's retry loop, before each attempt is signed and sent.
    this.client.middlewareStack.addRelativeTo(redirect, { relation: 'after', toMiddleware: 'retryMiddleware', name: 'rotorDirectDynamoDb' });
  }

  calls(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }

  reset(): void {
    this.counts.clear();
  }

  destroy(): void {
    this.client.destroy();
  }
}
