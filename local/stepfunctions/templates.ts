import { runtimeError } from './errors.js';
import { evaluateIntrinsic, isIntrinsic } from './intrinsics.js';
import { type PathScope, readPath } from './paths.js';

/**
 * Payload templates (Parameters, ResultSelector, ItemSelector, Assign): a key ending in `.$`
 * takes its value from a path or an intrinsic function and loses the suffix.
 */
export function evaluateTemplate(template: unknown, scope: PathScope, field = 'Parameters'): unknown {
  if (Array.isArray(template)) return template.map((item, i) => evaluateTemplate(item, scope, `${field}[${i}]`));
  if (typeof template !== 'object' || template === null) return template;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(template as Record<string, unknown>)) {
    if (key.endsWith('.$')) {
      if (typeof value !== 'string') throw runtimeError(`The value of '${key}' in ${field} must be a path or an intrinsic function`);
      out[key.slice(0, -2)] = isIntrinsic(value) ? evaluateIntrinsic(value, scope, key) : readPath(value, scope, key);
    } else {
      out[key] = evaluateTemplate(value, scope, `${field}.${key}`);
    }
  }
  return out;
}

/** A `.$`-style expression on its own (ErrorPath, CausePath, SecondsPath …). */
export function evaluateExpression(expression: string, scope: PathScope, field: string): unknown {
  return isIntrinsic(expression) ? evaluateIntrinsic(expression, scope, field) : readPath(expression, scope, field);
}
