import { AwsError } from '../types.js';

/**
 * The subset of the AWS IoT SQL that Rotor's rules use (domain/topics.ts ruleSqlFor):
 *   SELECT <item>[, <item>...] FROM '<topic filter>'
 * with items `*`, `encode(*, 'base64') AS x`, `clientid() AS x`, `principal() AS x`,
 * `topic() AS x`, `topic(N) AS x`, `timestamp() AS x`. Anything else is refused when the rule
 * is created, so a rule never silently means something different here than on AWS.
 */
export type SelectItem =
  | { kind: 'all' }
  | { kind: 'base64Payload'; alias: string }
  | { kind: 'clientId'; alias: string }
  | { kind: 'principal'; alias: string }
  | { kind: 'topic'; alias: string; segment?: number }
  | { kind: 'timestamp'; alias: string };

export interface ParsedRuleSql {
  items: SelectItem[];
  topicFilter: string;
}

/** What a rule sees of one message. */
export interface RuleMessage {
  topic: string;
  payload: Buffer;
  clientId: string;
  principal: string;
  /** Milliseconds since the epoch, when the broker received the message. */
  receivedAt: number;
}

export class SqlParseError extends AwsError {
  constructor(message: string) {
    super('SqlParseException', message, 400);
  }
}

const STATEMENT = /^\s*SELECT\s+(.+?)\s+FROM\s+'([^']+)'\s*$/is;
const ALIAS = /^(.*?)\s+AS\s+([A-Za-z_][A-Za-z0-9_]*)$/is;

/** Splits the select list on commas that are not inside parentheses or quotes. */
function splitItems(list: string): string[] {
  const items: string[] = [];
  let depth = 0;
  let quoted = false;
  let current = '';
  for (const ch of list) {
    if (ch === "'") quoted = !quoted;
    if (!quoted && ch === '(') depth++;
    if (!quoted && ch === ')') depth--;
    if (!quoted && depth === 0 && ch === ',') {
      items.push(current.trim());
      current = '';
    } else {
      current += ch;
    }
  }
  items.push(current.trim());
  return items;
}

function parseItem(text: string): SelectItem {
  if (text === '*') return { kind: 'all' };
  const aliased = ALIAS.exec(text);
  if (!aliased) throw new SqlParseError(`select item "${text}" needs an alias (… AS name); only * may stand alone`);
  const expression = aliased[1].replace(/\s+/g, '');
  const alias = aliased[2];
  const lower = expression.toLowerCase();
  if (lower === "encode(*,'base64')") return { kind: 'base64Payload', alias };
  if (lower === 'clientid()') return { kind: 'clientId', alias };
  if (lower === 'principal()') return { kind: 'principal', alias };
  if (lower === 'topic()') return { kind: 'topic', alias };
  if (lower === 'timestamp()') return { kind: 'timestamp', alias };
  const segment = /^topic\((\d+)\)$/.exec(lower);
  if (segment) {
    const n = Number(segment[1]);
    if (n < 1) throw new SqlParseError('topic(N) counts segments from 1');
    return { kind: 'topic', alias, segment: n };
  }
  throw new SqlParseError(`unsupported select expression "${aliased[1].trim()}" (supported: *, encode(*, 'base64'), clientid(), principal(), topic(), topic(N), timestamp())`);
}

export function validateTopicFilter(filter: string): void {
  if (filter.length === 0) throw new SqlParseError('the topic filter is empty');
  const levels = filter.split('/');
  levels.forEach((level, index) => {
    if (level.includes('#') && (level !== '#' || index !== levels.length - 1)) {
      throw new SqlParseError(`'#' must be the whole last level of the topic filter "${filter}"`);
    }
    if (level.includes('+') && level !== '+') throw new SqlParseError(`'+' must be a whole level of the topic filter "${filter}"`);
  });
}

export function parseRuleSql(sql: string): ParsedRuleSql {
  if (typeof sql !== 'string') throw new SqlParseError('sql is required');
  const statement = STATEMENT.exec(sql);
  if (!statement) {
    throw new SqlParseError(`unsupported SQL "${sql}": expected SELECT <items> FROM '<topic filter>' (no WHERE or other clauses)`);
  }
  const items = splitItems(statement[1]).map(parseItem);
  const aliases = items.flatMap((item) => ('alias' in item ? [item.alias] : []));
  const duplicate = aliases.find((alias, i) => aliases.indexOf(alias) !== i);
  if (duplicate) throw new SqlParseError(`alias ${duplicate} is used twice`);
  validateTopicFilter(statement[2]);
  return { items, topicFilter: statement[2] };
}

/** MQTT topic filter matching with + and # (a filter never matches $-topics through a wildcard). */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

export type SelectError = { ok: false; reason: string };
export type SelectResult = { ok: true; document: Record<string, unknown> } | SelectError;

/** Evaluates the select list for one message; `*` needs a JSON object payload. */
export function evaluateSelect(items: readonly SelectItem[], message: RuleMessage): SelectResult {
  const document: Record<string, unknown> = {};
  for (const item of items) {
    switch (item.kind) {
      case 'all': {
        let parsed: unknown;
        try {
          parsed = JSON.parse(message.payload.toString('utf8'));
        } catch {
          return { ok: false, reason: 'SELECT * needs a JSON payload; this one is not JSON' };
        }
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
          return { ok: false, reason: 'SELECT * needs a JSON object payload' };
        }
        Object.assign(document, parsed);
        break;
      }
      case 'base64Payload':
        document[item.alias] = message.payload.toString('base64');
        break;
      case 'clientId':
        document[item.alias] = message.clientId;
        break;
      case 'principal':
        document[item.alias] = message.principal;
        break;
      case 'topic':
        document[item.alias] = item.segment === undefined ? message.topic : message.topic.split('/')[item.segment - 1];
        break;
      case 'timestamp':
        document[item.alias] = message.receivedAt;
        break;
    }
  }
  return { ok: true, document };
}
