import { ruleSqlFor } from '../../../../domain/topics.js';
import { evaluateSelect, parseRuleSql, topicMatches } from '../../../../local/iot/rule-sql.js';

describe('rule SQL subset', () => {
  it('parses the SQL Rotor deploys for every device → cloud message', () => {
    const parsed = parseRuleSql(ruleSqlFor('crt_ack'));
    expect(parsed.topicFilter).toBe('management/topic/+/crt_ack');
    expect(parsed.items).toEqual([
      { kind: 'base64Payload', alias: 'payload' },
      { kind: 'clientId', alias: 'clientId' },
      { kind: 'principal', alias: 'principal' },
      { kind: 'topic', alias: 'topic' },
      { kind: 'timestamp', alias: 'receivedAt' },
    ]);
  });

  it('selects fields for one message', () => {
    const { items } = parseRuleSql("select *, topic(3) as thing, clientid() AS c FROM 'management/topic/#'");
    const result = evaluateSelect(items, {
      topic: 'management/topic/dev-7/csr_res',
      payload: Buffer.from('{"rotationId":"r1"}'),
      clientId: 'dev-7',
      principal: 'abc',
      receivedAt: 42,
    });
    expect(result).toEqual({ ok: true, document: { rotationId: 'r1', thing: 'dev-7', c: 'dev-7' } });
  });

  it('reports SELECT * on a payload that is not a JSON object instead of inventing fields', () => {
    const { items } = parseRuleSql("SELECT * FROM 'a/b'");
    expect(evaluateSelect(items, { topic: 'a/b', payload: Buffer.from('nope'), clientId: '', principal: '', receivedAt: 0 })).toMatchObject({ ok: false });
    expect(evaluateSelect(items, { topic: 'a/b', payload: Buffer.from('[1]'), clientId: '', principal: '', receivedAt: 0 })).toMatchObject({ ok: false });
  });

  it.each([
    ["SELECT * FROM 'a/b' WHERE x = 1", /WHERE|expected SELECT/],
    ["SELECT upper(x) AS y FROM 'a/b'", /unsupported select expression/],
    ["SELECT clientid() FROM 'a/b'", /needs an alias/],
    ["SELECT clientid() AS a, topic() AS a FROM 'a/b'", /used twice/],
    ["SELECT * FROM 'a/#/b'", /'#' must be the whole last level/],
    ["SELECT * FROM 'a/b+'", /'\+' must be a whole level/],
    ['DELETE FROM things', /expected SELECT/],
  ])('refuses %s', (sql, why) => {
    expect(() => parseRuleSql(sql)).toThrow(why);
    try {
      parseRuleSql(sql);
    } catch (error) {
      expect((error as Error).name).toBe('SqlParseException');
    }
  });

  it.each([
    ['management/topic/+/csr_res', 'management/topic/dev-1/csr_res', true],
    ['management/topic/+/csr_res', 'management/topic/dev-1/crt_ack', false],
    ['management/topic/+/csr_res', 'management/topic/dev-1/x/csr_res', false],
    ['management/#', 'management/topic/dev-1/csr_res', true],
    ['management/#', 'management', true],
    ['#', '$aws/things/x', false],
    ['a/b', 'a/b/c', false],
  ])('filter %s on %s → %s', (filter, topic, expected) => {
    expect(topicMatches(filter, topic)).toBe(expected);
  });
});
