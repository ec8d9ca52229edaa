/**
 * A function's configuration comes from its environment (wiring.json `environment`). A missing
 * required variable is a deployment error: it fails the cold start with a message that names it.
 */
export type Environment = Readonly<Record<string, string | undefined>>;

export class ConfigurationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigurationError';
  }
}

export function requiredEnv(name: string, env: Environment = process.env): string {
  const value = env[name]?.trim();
  if (!value) throw new ConfigurationError(`environment variable ${name} is not set`);
  return value;
}

export function optionalEnv(name: string, env: Environment = process.env): string | undefined {
  const value = env[name]?.trim();
  return value ? value : undefined;
}

export function positiveIntegerEnv(name: string, fallback: number, env: Environment = process.env): number {
  const raw = optionalEnv(name, env);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new ConfigurationError(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  return value;
}
