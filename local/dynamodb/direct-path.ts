/**
 * The Lambda workers' direct path to DynamoDB Local. Through the edge, each DynamoDB call of a
 * function crossed the runtime's main thread twice (in, then proxied to DynamoDB Local and
 * back): about half of a rotation's ~30 API calls, on the thread every other service shares
 * (docs/demo.md, "Where the time went"). A worker given this path sends a DynamoDB request that
 * its SDK addressed to the edge straight to DynamoDB Local instead, and counts it here, in memory
 * shared with the main thread, so the edge's call counts (`/_rotor/calls`, the demo's "AWS API
 * calls per rotation") are the same as before.
 *
 * What the edge does to DynamoDB calls besides counting them is a throttle fault (POST
 * /_rotor/faults for service 'dynamodb'): while one is pending, `viaEdge` is set and the workers
 * send their DynamoDB calls through the edge again, where the fault is taken and the call counted.
 * The quotas (local/edge/quotas.ts) do not cover DynamoDB, so nothing else is skipped. A crash
 * fault counts the responses a function receives, wherever they come from (worker-source.ts).
 */

/** The X-Amz-Target prefix of every DynamoDB call (JSON protocol, API version 2012-08-10). */
export const DYNAMODB_TARGET_PREFIX = 'DynamoDB_20120810.';

/**
 * The operations the direct path counts, one shared counter each. A call naming another one goes
 * through the edge as before, so no call is ever uncounted.
 */
export const DIRECT_OPERATIONS = [
  'BatchGetItem',
  'BatchWriteItem',
  'DeleteItem',
  'DescribeTable',
  'DescribeTimeToLive',
  'ExecuteStatement',
  'ExecuteTransaction',
  'GetItem',
  'ListTables',
  'PutItem',
  'Query',
  'Scan',
  'TransactGetItems',
  'TransactWriteItems',
  'UpdateItem',
] as const;

/** What a worker is given (workerData.dynamodbDirect): plain values and shared buffers only. */
export interface DirectPathWorkerData {
  /** The edge (the SDK clients' AWS_ENDPOINT_URL): calls addressed to it are the ones redirected. */
  edgeHost: string;
  edgePort: number;
  /** DynamoDB Local. */
  upstreamHost: string;
  upstreamPort: number;
  operations: readonly string[];
  /** Int32 per operation: calls that took the direct path. */
  counts: SharedArrayBuffer;
  /** Int32 [0]: 1 while the calls must go through the edge. */
  control: SharedArrayBuffer;
}

export class DynamoDbDirectPath {
  private readonly counts: Int32Array;
  private readonly control: Int32Array;
  private readonly upstream: URL;

  constructor(
    upstream: string,
    private readonly operations: readonly string[] = DIRECT_OPERATIONS,
  ) {
    this.upstream = new URL(upstream);
    this.counts = new Int32Array(new SharedArrayBuffer(operations.length * Int32Array.BYTES_PER_ELEMENT));
    this.control = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
  }

  /** For a worker of a function whose AWS endpoint is the edge at `edgeUrl`. */
  workerData(edgeUrl: string): DirectPathWorkerData {
    const edge = new URL(edgeUrl);
    return {
      edgeHost: edge.hostname,
      edgePort: Number(edge.port),
      upstreamHost: this.upstream.hostname,
      upstreamPort: Number(this.upstream.port),
      operations: [...this.operations],
      counts: this.counts.buffer as SharedArrayBuffer,
      control: this.control.buffer as SharedArrayBuffer,
    };
  }

  /** Whether the workers send DynamoDB calls through the edge (a throttle fault is pending). */
  get viaEdge(): boolean {
    return Atomics.load(this.control, 0) === 1;
  }

  set viaEdge(on: boolean) {
    Atomics.store(this.control, 0, on ? 1 : 0);
  }

  /** Calls that took the direct path, keyed `dynamodb:Operation` as the edge counts them. */
  calls(): Record<string, number> {
    const calls: Record<string, number> = {};
    this.operations.forEach((operation, index) => {
      const count = Atomics.load(this.counts, index);
      if (count > 0) calls[`dynamodb:${operation}`] = count;
    });
    return calls;
  }

  reset(): void {
    for (let index = 0; index < this.operations.length; index++) Atomics.store(this.counts, index, 0);
  }
}
