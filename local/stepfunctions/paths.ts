import { JSONPath } from 'jsonpath-plus';
import { StatesErrorName, StatesFailure, runtimeError } from './errors.js';

/**
 * JSONPath as Step Functions reads it: `$` is the state's input, `$$` the context object,
 * `$name` a workflow variable. Definite paths (`$.a.b[0]`, `$['x y']`) resolve to one value
 * and are the only ones ResultPath accepts; anything else (`..`, `*`, filters, slices) goes
 * through jsonpath-plus and yields an array, as AWS does.
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** What a path can reach while one state runs. */
export interface PathScope {
  input: unknown;
  context: unknown;
  variables: Readonly<Record<string, unknown>>;
}

type Segment = string | number;

interface ParsedPath {
  root: { kind: 'input' } | { kind: 'context' } | { kind: 'variable'; name: string };
  /** Undefined when the path is not definite. */
  segments?: Segment[];
  /** The path with its root replaced by `$`, for jsonpath-plus. */
  rest: string;
}

const VARIABLE = /^\$([A-Za-z_][A-Za-z0-9_]*)/;

function parseRoot(path: string): ParsedPath {
  if (path.startsWith('$$')) return { root: { kind: 'context' }, rest: '$' + path.slice(2) };
  const variable = VARIABLE.exec(path);
  if (variable) return { root: { kind: 'variable', name: variable[1] }, rest: '$' + path.slice(variable[0].length) };
  if (path.startsWith('$')) return { root: { kind: 'input' }, rest: path };
  throw runtimeError(`'${path}' is not a JSONPath: it must start with '$'`);
}

/** Splits `$.a['b'][0]` into ['a', 'b', 0], or returns undefined for an indefinite path. */
export function definiteSegments(rest: string): Segment[] | undefined {
  const segments: Segment[] = [];
  let i = 1;
  while (i < rest.length) {
    const ch = rest[i];
    if (ch === '.') {
      if (rest[i + 1] === '.') return undefined;
      let j = i + 1;
      while (j < rest.length && rest[j] !== '.' && rest[j] !== '[') j++;
      const name = rest.slice(i + 1, j);
      if (name === '' || name === '*') return undefined;
      segments.push(name);
      i = j;
    } else if (ch === '[') {
      const close = rest.indexOf(']', i);
      if (close < 0) return undefined;
      const inner = rest.slice(i + 1, close).trim();
      if (/^\d+$/.test(inner)) segments.push(Number(inner));
      else if (/^'[^']*'$/.test(inner) || /^"[^"]*"$/.test(inner)) segments.push(inner.slice(1, -1));
      else return undefined;
      i = close + 1;
    } else {
      return undefined;
    }
  }
  return segments;
}

function parse(path: string): ParsedPath {
  const parsed = parseRoot(path);
  parsed.segments = definiteSegments(parsed.rest);
  return parsed;
}

function rootValue(parsed: ParsedPath, scope: PathScope, path: string): unknown {
  switch (parsed.root.kind) {
    case 'input':
      return scope.input;
    case 'context':
      return scope.context;
    case 'variable': {
      const { name } = parsed.root;
      if (!Object.prototype.hasOwnProperty.call(scope.variables, name)) {
        throw runtimeError(`The variable '$${name}' referenced by '${path}' is not defined`);
      }
      return scope.variables[name];
    }
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const MISSING = Symbol('missing');

function walk(value: unknown, segments: readonly Segment[]): unknown {
  let current: unknown = value;
  for (const segment of segments) {
    if (typeof segment === 'number') {
      if (!Array.isArray(current) || segment >= current.length) return MISSING;
      current = current[segment];
    } else if (isRecord(current) && Object.prototype.hasOwnProperty.call(current, segment)) {
      current = current[segment];
    } else {
      return MISSING;
    }
  }
  return current;
}

/** Reads a path; a definite path that is not there is a States.Runtime error, as on AWS. */
export function readPath(path: string, scope: PathScope, field = 'path'): unknown {
  const parsed = parse(path);
  const root = rootValue(parsed, scope, path);
  if (parsed.segments) {
    const value = walk(root, parsed.segments);
    if (value === MISSING) {
      throw runtimeError(
        `The JSONPath '${path}' specified for the field '${field}' could not be found in the input '${JSON.stringify(root)}'`,
      );
    }
    return value;
  }
  return JSONPath({ path: parsed.rest, json: root as object, wrap: true }) as unknown[];
}

/** True when a definite path resolves (Choice's IsPresent). */
export function pathExists(path: string, scope: PathScope): boolean {
  const parsed = parse(path);
  let root: unknown;
  try {
    root = rootValue(parsed, scope, path);
  } catch {
    return false;
  }
  if (parsed.segments) return walk(root, parsed.segments) !== MISSING;
  return (JSONPath({ path: parsed.rest, json: root as object, wrap: true }) as unknown[]).length > 0;
}

/** InputPath/OutputPath: null means `{}`, absent means `$`. */
export function filterPath(path: string | null | undefined, scope: PathScope, field: string): unknown {
  if (path === undefined) return scope.input;
  if (path === null) return {};
  return readPath(path, scope, field);
}

/** Puts `result` into a copy of `input` at ResultPath (absent: `$`, null: discard the result). */
export function applyResultPath(input: unknown, resultPath: string | null | undefined, result: unknown): unknown {
  if (resultPath === undefined || resultPath === '$') return result;
  if (resultPath === null) return input;
  const parsed = parse(resultPath);
  if (parsed.root.kind !== 'input' || !parsed.segments) {
    throw runtimeError(`ResultPath '${resultPath}' must be a definite path on the state input`);
  }
  const segments = parsed.segments;
  if (segments.length === 0) return result;
  const output: unknown = structuredClone(input);
  if (!isRecord(output) && !Array.isArray(output)) {
    throw new StatesFailure(
      StatesErrorName.ResultPathMatchFailure,
      `Unable to apply step "${resultPath}" to input ${JSON.stringify(input)}`,
    );
  }
  let current: Record<string, unknown> | unknown[] = output;
  segments.forEach((segment, index) => {
    const last = index === segments.length - 1;
    const container = current as Record<string | number, unknown>;
    if (last) {
      container[segment] = result;
      return;
    }
    let next = container[segment];
    if (next === undefined) {
      next = {};
      container[segment] = next;
    }
    if (!isRecord(next) && !Array.isArray(next)) {
      throw new StatesFailure(
        StatesErrorName.ResultPathMatchFailure,
        `Unable to apply ResultPath "${resultPath}": '${String(segment)}' is not an object in ${JSON.stringify(input)}`,
      );
    }
    current = next;
  });
  return output;
}
