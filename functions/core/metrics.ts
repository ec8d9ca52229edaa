/**
 * CloudWatch metrics in the Embedded Metric Format: a JSON line on stdout that CloudWatch Logs
 * turns into metrics, no API call and no extra permission. Same shape as Powertools' metrics
 * (default dimension `service`, a `ColdStart` metric with `function_name`), in-repo for the
 * bundle size (see logger.ts).
 */
export const MetricUnit = { Count: 'Count', Milliseconds: 'Milliseconds' } as const;
export type MetricUnit = (typeof MetricUnit)[keyof typeof MetricUnit];

/** CloudWatch takes at most 100 metrics per EMF document; more are flushed in another. */
const MAX_METRICS_PER_DOCUMENT = 100;

export interface MetricsOptions {
  namespace: string;
  serviceName: string;
  write?: (line: string) => void;
  now?: () => number;
}

interface Pending {
  unit: MetricUnit;
  values: number[];
}

export class EmfMetrics {
  private readonly write: (line: string) => void;
  private readonly now: () => number;
  private pending = new Map<string, Pending>();
  private coldStartSeen = false;

  constructor(private readonly options: MetricsOptions) {
    this.write = options.write ?? ((line) => process.stdout.write(`${line}\n`));
    this.now = options.now ?? Date.now;
  }

  /** Adds to the invocation's document (dimension `service`), flushed at its end. */
  add(name: string, unit: MetricUnit, value: number): void {
    const pending = this.pending.get(name) ?? { unit, values: [] };
    pending.values.push(value);
    this.pending.set(name, pending);
  }

  /** Emits one metric now, in a document of its own with these dimensions besides `service`. */
  single(name: string, unit: MetricUnit, value: number, dimensions: Record<string, string>): void {
    this.document(new Map([[name, { unit, values: [value] }]]), dimensions);
  }

  /** ColdStart = 1 on an execution environment's first invocation (dimension function_name). */
  coldStart(functionName: string): void {
    if (this.coldStartSeen) return;
    this.coldStartSeen = true;
    this.single('ColdStart', MetricUnit.Count, 1, { function_name: functionName });
  }

  /** Writes what the invocation added, if anything. */
  flush(): void {
    const entries = [...this.pending];
    this.pending = new Map();
    for (let start = 0; start < entries.length; start += MAX_METRICS_PER_DOCUMENT) {
      this.document(new Map(entries.slice(start, start + MAX_METRICS_PER_DOCUMENT)));
    }
  }

  private document(metrics: Map<string, Pending>, dimensions: Record<string, string> = {}): void {
    const values = Object.fromEntries([...metrics].map(([name, { values }]) => [name, values.length === 1 ? values[0] : values]));
    const allDimensions = { service: this.options.serviceName, ...dimensions };
    this.write(
      JSON.stringify({
        _aws: {
          Timestamp: this.now(),
          CloudWatchMetrics: [
            {
              Namespace: this.options.namespace,
              Dimensions: [Object.keys(allDimensions)],
              Metrics: [...metrics].map(([name, { unit }]) => ({ Name: name, Unit: unit })),
            },
          ],
        },
        ...allDimensions,
        ...values,
      }),
    );
  }
}
