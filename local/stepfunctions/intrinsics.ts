import { createHash, randomInt, randomUUID } from 'node:crypto';
import { StatesErrorName, StatesFailure } from './errors.js';
import { type PathScope, readPath } from './paths.js';

/**
 * The intrinsic functions of the JSONPath query language (`"x.$": "States.Format('{}', $.a)"`).
 * Arguments are quoted strings (with \' \{ \} \\ escapes), numbers, booleans, null, paths and
 * nested intrinsic calls.
 */

type Expr =
  | { kind: 'literal'; value: unknown }
  | { kind: 'path'; path: string }
  | { kind: 'call'; name: string; args: Expr[] };

function fail(message: string): StatesFailure {
  return new StatesFailure(StatesErrorName.IntrinsicFailure, message);
}

class Parser {
  private i = 0;
  constructor(private readonly text: string) {}

  parseAll(): Expr {
    const expr = this.expr();
    this.skipSpace();
    if (this.i !== this.text.length) throw fail(`Unexpected '${this.text.slice(this.i)}' in intrinsic '${this.text}'`);
    return expr;
  }

  private skipSpace(): void {
    while (this.i < this.text.length && /\s/.test(this.text[this.i])) this.i++;
  }

  private expr(): Expr {
    this.skipSpace();
    const rest = this.text.slice(this.i);
    if (rest.startsWith('States.')) return this.call();
    if (rest.startsWith("'")) return this.string();
    if (rest.startsWith('$')) return this.path();
    const literal = /^(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/.exec(rest);
    if (literal) {
      this.i += literal[0].length;
      return { kind: 'literal', value: JSON.parse(literal[0]) };
    }
    throw fail(`Cannot parse argument '${rest}' of intrinsic '${this.text}'`);
  }

  private call(): Expr {
    const match = /^States\.([A-Za-z0-9]+)\s*\(/.exec(this.text.slice(this.i));
    if (!match) throw fail(`Malformed intrinsic call in '${this.text}'`);
    this.i += match[0].length;
    const args: Expr[] = [];
    this.skipSpace();
    if (this.text[this.i] === ')') {
      this.i++;
      return { kind: 'call', name: match[1], args };
    }
    for (;;) {
      args.push(this.expr());
      this.skipSpace();
      const ch = this.text[this.i++];
      if (ch === ')') break;
      if (ch !== ',') throw fail(`Expected ',' or ')' in intrinsic '${this.text}'`);
    }
    return { kind: 'call', name: match[1], args };
  }

  private string(): Expr {
    let value = '';
    this.i++;
    while (this.i < this.text.length) {
      const ch = this.text[this.i++];
      if (ch === '\\') {
        // Keep \{ and \} escaped so that States.Format can tell them from placeholders.
        const next = this.text[this.i++];
        value += next === '{' || next === '}' ? `\\${next}` : next;
      } else if (ch === "'") {
        return { kind: 'literal', value };
      } else {
        value += ch;
      }
    }
    throw fail(`Unterminated string in intrinsic '${this.text}'`);
  }

  private path(): Expr {
    const start = this.i;
    let depth = 0;
    let quote: string | undefined;
    while (this.i < this.text.length) {
      const ch = this.text[this.i];
      if (quote) {
        if (ch === quote) quote = undefined;
      } else if (ch === "'" || ch === '"') quote = ch;
      else if (ch === '[' || ch === '(') depth++;
      else if ((ch === ']' || ch === ')') && depth > 0) depth--;
      else if ((ch === ',' || ch === ')') && depth === 0) break;
      this.i++;
    }
    return { kind: 'path', path: this.text.slice(start, this.i).trim() };
  }
}

function unescapeBraces(text: string): string {
  return text.replace(/\\([{}])/g, '$1');
}

function asString(value: unknown, fn: string): string {
  if (typeof value !== 'string') throw fail(`${fn} expects a string, got ${JSON.stringify(value)}`);
  return value;
}

function asNumber(value: unknown, fn: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw fail(`${fn} expects a number, got ${JSON.stringify(value)}`);
  return value;
}

function asArray(value: unknown, fn: string): unknown[] {
  if (!Array.isArray(value)) throw fail(`${fn} expects an array, got ${JSON.stringify(value)}`);
  return value;
}

function arity(name: string, args: unknown[], min: number, max = min): void {
  if (args.length < min || args.length > max) {
    throw fail(`States.${name} takes ${min === max ? min : `${min} to ${max}`} arguments, got ${args.length}`);
  }
}

function deepMerge(left: unknown, right: unknown): unknown {
  if (typeof left !== 'object' || left === null || Array.isArray(left)) return right;
  if (typeof right !== 'object' || right === null || Array.isArray(right)) return right;
  const out: Record<string, unknown> = { ...(left as Record<string, unknown>) };
  for (const [key, value] of Object.entries(right as Record<string, unknown>)) out[key] = key in out ? deepMerge(out[key], value) : value;
  return out;
}

const HASH_ALGORITHMS: Record<string, string> = { MD5: 'md5', 'SHA-1': 'sha1', 'SHA-256': 'sha256', 'SHA-384': 'sha384', 'SHA-512': 'sha512' };

const FUNCTIONS: Record<string, (args: unknown[]) => unknown> = {
  Format(args) {
    if (args.length < 1) throw fail('States.Format needs a template');
    const template = asString(args[0], 'States.Format');
    let next = 1;
    const out = template.replace(/\\[{}]|\{\}/g, (token) => {
      if (token !== '{}') return token.slice(1);
      if (next >= args.length) throw fail(`States.Format has more {} than arguments in '${unescapeBraces(template)}'`);
      const value = args[next++];
      return typeof value === 'string' ? value : JSON.stringify(value);
    });
    if (next !== args.length) throw fail(`States.Format got ${args.length - 1} arguments for ${next - 1} placeholders`);
    return out;
  },
  StringToJson(args) {
    arity('StringToJson', args, 1);
    try {
      return JSON.parse(asString(args[0], 'States.StringToJson'));
    } catch (error) {
      throw fail(`States.StringToJson could not parse its argument: ${(error as Error).message}`);
    }
  },
  JsonToString(args) {
    arity('JsonToString', args, 1);
    return JSON.stringify(args[0]);
  },
  Array(args) {
    return args;
  },
  ArrayPartition(args) {
    arity('ArrayPartition', args, 2);
    const items = asArray(args[0], 'States.ArrayPartition');
    const size = asNumber(args[1], 'States.ArrayPartition');
    if (size <= 0 || !Number.isInteger(size)) throw fail('States.ArrayPartition needs a positive integer chunk size');
    const out: unknown[][] = [];
    for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
    return out;
  },
  ArrayContains(args) {
    arity('ArrayContains', args, 2);
    const needle = JSON.stringify(args[1]);
    return asArray(args[0], 'States.ArrayContains').some((item) => JSON.stringify(item) === needle);
  },
  ArrayRange(args) {
    arity('ArrayRange', args, 3);
    const [start, end, step] = args.map((a) => asNumber(a, 'States.ArrayRange'));
    if (step === 0) throw fail('States.ArrayRange step must not be 0');
    const out: number[] = [];
    for (let v = start; step > 0 ? v <= end : v >= end; v += step) {
      out.push(v);
      if (out.length > 1000) throw fail('States.ArrayRange is limited to 1000 items');
    }
    return out;
  },
  ArrayGetItem(args) {
    arity('ArrayGetItem', args, 2);
    const items = asArray(args[0], 'States.ArrayGetItem');
    const index = asNumber(args[1], 'States.ArrayGetItem');
    if (index < 0 || index >= items.length) throw fail(`States.ArrayGetItem index ${index} is out of bounds`);
    return items[index];
  },
  ArrayLength(args) {
    arity('ArrayLength', args, 1);
    return asArray(args[0], 'States.ArrayLength').length;
  },
  ArrayUnique(args) {
    arity('ArrayUnique', args, 1);
    const seen = new Set<string>();
    return asArray(args[0], 'States.ArrayUnique').filter((item) => {
      const key = JSON.stringify(item);
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
  },
  Base64Encode(args) {
    arity('Base64Encode', args, 1);
    return Buffer.from(asString(args[0], 'States.Base64Encode'), 'utf8').toString('base64');
  },
  Base64Decode(args) {
    arity('Base64Decode', args, 1);
    return Buffer.from(asString(args[0], 'States.Base64Decode'), 'base64').toString('utf8');
  },
  Hash(args) {
    arity('Hash', args, 2);
    const algorithm = HASH_ALGORITHMS[asString(args[1], 'States.Hash')];
    if (!algorithm) throw fail(`States.Hash does not know the algorithm ${JSON.stringify(args[1])}`);
    const data = typeof args[0] === 'string' ? args[0] : JSON.stringify(args[0]);
    return createHash(algorithm).update(data).digest('hex');
  },
  JsonMerge(args) {
    arity('JsonMerge', args, 3);
    const [left, right, deep] = args;
    if (typeof left !== 'object' || left === null || typeof right !== 'object' || right === null) {
      throw fail('States.JsonMerge merges two objects');
    }
    return deep === true ? deepMerge(left, right) : { ...left, ...right };
  },
  MathRandom(args) {
    arity('MathRandom', args, 2, 3);
    const start = asNumber(args[0], 'States.MathRandom');
    const end = asNumber(args[1], 'States.MathRandom');
    return randomInt(Math.trunc(start), Math.trunc(end));
  },
  MathAdd(args) {
    arity('MathAdd', args, 2);
    return asNumber(args[0], 'States.MathAdd') + asNumber(args[1], 'States.MathAdd');
  },
  StringSplit(args) {
    arity('StringSplit', args, 2);
    const text = asString(args[0], 'States.StringSplit');
    const delimiters = asString(args[1], 'States.StringSplit');
    return text.split(new RegExp(`[${delimiters.replace(/[\\\]^-]/g, '\\$&')}]`)).filter((part) => part !== '');
  },
  UUID(args) {
    arity('UUID', args, 0);
    return randomUUID();
  },
};

/** The intrinsic functions this engine knows, for the definition's support check. */
export const INTRINSIC_NAMES: readonly string[] = Object.keys(FUNCTIONS).map((name) => `States.${name}`);

function evaluate(expr: Expr, scope: PathScope, field: string): unknown {
  switch (expr.kind) {
    case 'literal':
      return expr.value;
    case 'path':
      return readPath(expr.path, scope, field);
    case 'call': {
      const fn = FUNCTIONS[expr.name];
      if (!fn) throw fail(`Unknown intrinsic function States.${expr.name}`);
      const args = expr.args.map((arg) => evaluate(arg, scope, field));
      // Only States.Format reads its escapes; everywhere else \{ is a plain brace.
      const plain = expr.name === 'Format' ? args : args.map((a, i) => (expr.args[i].kind === 'literal' && typeof a === 'string' ? unescapeBraces(a) : a));
      return fn(plain);
    }
  }
}

export function isIntrinsic(text: string): boolean {
  return text.trimStart().startsWith('States.');
}

/** Evaluates one intrinsic expression against the state's scope. */
export function evaluateIntrinsic(text: string, scope: PathScope, field = 'intrinsic'): unknown {
  return evaluate(new Parser(text).parseAll(), scope, field);
}

/** The names of the intrinsic functions an expression calls (for the support check). */
export function intrinsicNamesIn(text: string): string[] {
  return [...text.matchAll(/States\.([A-Za-z0-9]+)\s*\(/g)].map((m) => `States.${m[1]}`);
}
