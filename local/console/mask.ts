/**
 * Task tokens are bearer secrets: whoever holds one can end a waiting task. The console shows
 * states' inputs and outputs, history events and rotation records, all of which can carry one,
 * so everything it serves goes through these two masks:
 * - by name: any JSON member whose name says token (taskToken, TaskToken, "taskToken.$" …),
 *   also inside JSON documents carried as strings (a history event's input and output);
 * - by shape: any run of characters that looks like a task token (the local runtime's, and
 *   AWS's long base64 ones), wherever it is, as the last line of defence.
 */
export const MASKED = '«task token masked»';

const TOKEN_KEY = /token/i;
/** The local runtime's tokens (AQ + base64url, 258+ chars) and AWS's (long base64 runs). */
const TOKEN_VALUE = /AQ[A-Za-z0-9_-]{200,}|[A-Za-z0-9+/=_-]{400,}/g;

function maskValue(value: unknown, depth: number): unknown {
  if (depth > 64) return value;
  if (typeof value === 'string') return maskString(value, depth);
  if (Array.isArray(value)) return value.map((v) => maskValue(v, depth + 1));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) {
      out[key] = TOKEN_KEY.test(key) && typeof v === 'string' && !/^\$/.test(v) ? MASKED : maskValue(v, depth + 1);
    }
    return out;
  }
  return value;
}

function maskString(text: string, depth: number): string {
  const trimmed = text.trimStart();
  if ((trimmed.startsWith('{') || trimmed.startsWith('[')) && text.length < 4_000_000) {
    try {
      return JSON.stringify(maskValue(JSON.parse(text), depth + 1));
    } catch {
      // Not JSON after all: masked by shape below.
    }
  }
  return text.replace(TOKEN_VALUE, MASKED);
}

/** A copy of `value` with every task token masked. */
export function maskTokens<T>(value: T): T {
  return maskValue(value, 0) as T;
}

/** Masks by shape in text about to be sent (HTML, serialized JSON). */
export function maskTokenText(text: string): string {
  return text.replace(TOKEN_VALUE, MASKED);
}
