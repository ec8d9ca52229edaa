import {
  CLOUD_TO_DEVICE,
  DEVICE_TO_CLOUD,
  deviceSubscriptionFilter,
  MessageType,
  parseTopic,
  ruleNameFor,
  ruleSqlFor,
  ruleTopicFilter,
  TOPIC_ROOT,
  topicFor,
} from '../../../domain/topics.js';

describe('topics (PROTOCOL.md, "Topics")', () => {
  it('spells every topic of the protocol table', () => {
    expect(Object.values(MessageType).map((type) => topicFor('t1', type))).toEqual([
      'management/topic/t1/csr_req',
      'management/topic/t1/csr_res',
      'management/topic/t1/crt_res',
      'management/topic/t1/crt_ack',
      'management/topic/t1/crt_err',
      'management/topic/t1/crt_done',
      'management/topic/t1/abort',
    ]);
  });

  it('splits the directions without overlap, covering every type', () => {
    const both = [...DEVICE_TO_CLOUD, ...CLOUD_TO_DEVICE];
    expect(new Set(both).size).toBe(both.length);
    expect([...both].sort()).toEqual(Object.values(MessageType).sort());
  });

  it('parses what topicFor makes, for every type', () => {
    for (const type of Object.values(MessageType)) {
      expect(parseTopic(topicFor('sensor_1:a-b', type))).toEqual({ thingName: 'sensor_1:a-b', type });
    }
  });

  it.each([
    ['another root', 'other/topic/t1/csr_res'],
    ['an unknown type', `${TOPIC_ROOT}/t1/hello`],
    ['an extra level', `${TOPIC_ROOT}/t1/csr_res/x`],
    ['a missing thing', `${TOPIC_ROOT}//csr_res`],
    ['only the root', `${TOPIC_ROOT}/`],
  ])('rejects %s', (_name, topic) => {
    expect(parseTopic(topic)).toBeUndefined();
  });

  it('builds the rule filters, rule SQL and device filter from the root', () => {
    expect(ruleTopicFilter(MessageType.CsrResponse)).toBe('management/topic/+/csr_res');
    expect(deviceSubscriptionFilter('t1')).toBe('management/topic/t1/+');
    const sql = ruleSqlFor(MessageType.CertificateAck);
    expect(sql).toContain("FROM 'management/topic/+/crt_ack'");
    expect(sql).toContain('principal() AS principal');
    expect(sql).toContain("encode(*, 'base64') AS payload");
  });

  it('makes rule names IoT accepts', () => {
    expect(ruleNameFor(MessageType.CertificateError, 'rotor-prod.eu')).toBe('rotor_prod_eu_crt_err');
    for (const type of DEVICE_TO_CLOUD) expect(ruleNameFor(type)).toMatch(/^[a-zA-Z0-9_]+$/);
  });
});
