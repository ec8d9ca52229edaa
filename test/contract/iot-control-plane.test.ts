import {
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CreateCertificateFromCsrCommand,
  CreateKeysAndCertificateCommand,
  CreatePolicyCommand,
  CreateThingCommand,
  DeleteCertificateCommand,
  DeleteThingCommand,
  DescribeCertificateCommand,
  DescribeEndpointCommand,
  DescribeThingCommand,
  DetachPolicyCommand,
  DetachThingPrincipalCommand,
  GetPolicyCommand,
  IoTClient,
  ListAttachedPoliciesCommand,
  ListCertificatesCommand,
  ListPrincipalThingsCommand,
  ListTargetsForPolicyCommand,
  ListThingPrincipalsCommand,
  ListThingsCommand,
  UpdateCertificateCommand,
  CreateTopicRuleCommand,
  GetTopicRuleCommand,
  ListTopicRulesCommand,
} from '@aws-sdk/client-iot';
import { X509Certificate } from 'node:crypto';
import { ruleNameFor, ruleSqlFor } from '../../domain/topics.js';
import { startLocalIot, type LocalIot } from '../../local/iot/index.js';
import { clientConfig, makeCsr, RecordingInvoker, RecordingSns, serve, type Harness } from './iot-harness.js';

describe('local IoT control plane through @aws-sdk/client-iot', () => {
  let iot: LocalIot;
  let harness: Harness;
  let client: IoTClient;

  beforeAll(async () => {
    iot = await startLocalIot({ invoker: new RecordingInvoker(), sns: new RecordingSns(), dataEndpoint: () => 'localhost:4566' });
    harness = await serve(iot.controlPlane);
    client = new IoTClient(clientConfig(harness.endpoint));
  });

  afterAll(async () => {
    client.destroy();
    await harness.close();
    await iot.stop();
  });

  async function newCertificate(thing: string, active = true) {
    const { csrPem } = await makeCsr(thing);
    return client.send(new CreateCertificateFromCsrCommand({ certificateSigningRequest: csrPem, setAsActive: active }));
  }

  it('issues a certificate from a CSR whose id is the SHA-256 of its DER and whose ARN is the cert ARN', async () => {
    const created = await newCertificate('dev-csr');
    const der = new X509Certificate(created.certificatePem!).raw;
    const { createHash } = await import('node:crypto');
    expect(created.certificateId).toBe(createHash('sha256').update(der).digest('hex'));
    expect(created.certificateArn).toBe(`arn:aws:iot:us-east-1:000000000000:cert/${created.certificateId}`);
    expect(new X509Certificate(created.certificatePem!).verify(new X509Certificate(iot.ca.certificatePem).publicKey)).toBe(true);

    const { certificateDescription: d } = await client.send(new DescribeCertificateCommand({ certificateId: created.certificateId }));
    expect(d?.status).toBe('ACTIVE');
    expect(d?.certificatePem).toBe(created.certificatePem);
    expect(d?.creationDate).toBeInstanceOf(Date);
    // AWS's CreateCertificateFromCsr certificates expire at the end of 2049.
    expect(d?.validity?.notAfter?.toISOString()).toBe('2049-12-31T23:59:59.000Z');
  });

  it('refuses a CSR that is not PEM, and one whose signature does not verify', async () => {
    await expect(client.send(new CreateCertificateFromCsrCommand({ certificateSigningRequest: 'not a csr' }))).rejects.toMatchObject({
      name: 'InvalidRequestException',
      $metadata: { httpStatusCode: 400 },
    });
    const { csrPem } = await makeCsr('dev-tamper');
    const body = csrPem.split('\n');
    // Flip one character inside the base64 of the signed part.
    const line = body[3];
    body[3] = line.slice(0, 10) + (line[10] === 'A' ? 'B' : 'A') + line.slice(11);
    await expect(client.send(new CreateCertificateFromCsrCommand({ certificateSigningRequest: body.join('\n') }))).rejects.toMatchObject({
      name: 'InvalidRequestException',
    });
  });

  it('describes an unknown certificate as ResourceNotFoundException', async () => {
    await expect(client.send(new DescribeCertificateCommand({ certificateId: 'f'.repeat(64) }))).rejects.toMatchObject({
      name: 'ResourceNotFoundException',
      $metadata: { httpStatusCode: 404 },
    });
  });

  it('attaches policies and things and lists them both ways', async () => {
    const cert = await newCertificate('dev-attach');
    await client.send(new CreatePolicyCommand({ policyName: 'attach-policy', policyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [] }) }));
    await client.send(new CreateThingCommand({ thingName: 'dev-attach' }));
    await client.send(new AttachPolicyCommand({ policyName: 'attach-policy', target: cert.certificateArn }));
    await client.send(new AttachThingPrincipalCommand({ thingName: 'dev-attach', principal: cert.certificateArn }));

    const attached = await client.send(new ListAttachedPoliciesCommand({ target: cert.certificateArn }));
    expect(attached.policies).toEqual([{ policyName: 'attach-policy', policyArn: 'arn:aws:iot:us-east-1:000000000000:policy/attach-policy' }]);
    expect((await client.send(new ListTargetsForPolicyCommand({ policyName: 'attach-policy' }))).targets).toEqual([cert.certificateArn]);
    expect((await client.send(new ListThingPrincipalsCommand({ thingName: 'dev-attach' }))).principals).toEqual([cert.certificateArn]);
    expect((await client.send(new ListPrincipalThingsCommand({ principal: cert.certificateArn }))).things).toEqual(['dev-attach']);
    expect(iot.registry.certificatesOf('dev-attach').map((c) => c.certificateId)).toEqual([cert.certificateId]);

    const thing = await client.send(new DescribeThingCommand({ thingName: 'dev-attach' }));
    expect(thing.thingArn).toBe('arn:aws:iot:us-east-1:000000000000:thing/dev-attach');
    expect((await client.send(new GetPolicyCommand({ policyName: 'attach-policy' }))).defaultVersionId).toBe('1');
    await expect(client.send(new CreatePolicyCommand({ policyName: 'attach-policy', policyDocument: '{"Statement":[]}' }))).rejects.toMatchObject({
      name: 'ResourceAlreadyExistsException',
      $metadata: { httpStatusCode: 409 },
    });
  });

  it('refuses to delete an ACTIVE certificate, then one with a thing attached, then one with policies unless forced', async () => {
    const cert = await newCertificate('dev-delete');
    const id = cert.certificateId!;
    await client.send(new CreatePolicyCommand({ policyName: 'delete-policy', policyDocument: '{"Statement":[]}' }));
    await client.send(new CreateThingCommand({ thingName: 'dev-delete' }));
    await client.send(new AttachPolicyCommand({ policyName: 'delete-policy', target: cert.certificateArn }));
    await client.send(new AttachThingPrincipalCommand({ thingName: 'dev-delete', principal: cert.certificateArn }));

    await expect(client.send(new DeleteCertificateCommand({ certificateId: id }))).rejects.toMatchObject({ name: 'CertificateStateException', $metadata: { httpStatusCode: 406 } });
    await client.send(new UpdateCertificateCommand({ certificateId: id, newStatus: 'INACTIVE' }));
    await expect(client.send(new DeleteCertificateCommand({ certificateId: id, forceDelete: true }))).rejects.toMatchObject({ name: 'DeleteConflictException', $metadata: { httpStatusCode: 409 } });
    await expect(client.send(new DeleteThingCommand({ thingName: 'dev-delete' }))).rejects.toMatchObject({ name: 'InvalidRequestException' });
    await client.send(new DetachThingPrincipalCommand({ thingName: 'dev-delete', principal: cert.certificateArn }));
    await expect(client.send(new DeleteCertificateCommand({ certificateId: id }))).rejects.toMatchObject({ name: 'DeleteConflictException' });
    // Nothing was lost by the refusals.
    expect((await client.send(new ListAttachedPoliciesCommand({ target: cert.certificateArn }))).policies).toHaveLength(1);

    await client.send(new DeleteCertificateCommand({ certificateId: id, forceDelete: true }));
    await expect(client.send(new DescribeCertificateCommand({ certificateId: id }))).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
    expect((await client.send(new ListTargetsForPolicyCommand({ policyName: 'delete-policy' }))).targets).toEqual([]);
  });

  it('deletes a certificate with nothing attached once INACTIVE, and detaches a policy', async () => {
    const cert = await newCertificate('dev-plain', false);
    await client.send(new CreatePolicyCommand({ policyName: 'plain-policy', policyDocument: '{"Statement":[]}' }));
    await client.send(new AttachPolicyCommand({ policyName: 'plain-policy', target: cert.certificateArn }));
    await client.send(new DetachPolicyCommand({ policyName: 'plain-policy', target: cert.certificateArn }));
    await client.send(new DeleteCertificateCommand({ certificateId: cert.certificateId }));
    await expect(client.send(new DescribeCertificateCommand({ certificateId: cert.certificateId }))).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
  });

  it('keeps REVOKED certificates revoked and refuses statuses UpdateCertificate cannot set', async () => {
    const cert = await newCertificate('dev-revoke');
    await client.send(new UpdateCertificateCommand({ certificateId: cert.certificateId, newStatus: 'REVOKED' }));
    await expect(client.send(new UpdateCertificateCommand({ certificateId: cert.certificateId, newStatus: 'ACTIVE' }))).rejects.toMatchObject({ name: 'CertificateStateException' });
    await expect(client.send(new UpdateCertificateCommand({ certificateId: cert.certificateId, newStatus: 'BOGUS' as never }))).rejects.toMatchObject({ name: 'InvalidRequestException' });
  });

  it('pages ListCertificates with pageSize and marker, newest first unless ascending', async () => {
    const all: string[] = [];
    let marker: string | undefined;
    do {
      const pageOut = await client.send(new ListCertificatesCommand({ pageSize: 2, marker }));
      expect(pageOut.certificates!.length).toBeLessThanOrEqual(2);
      all.push(...pageOut.certificates!.map((c) => c.certificateId!));
      marker = pageOut.nextMarker;
    } while (marker);
    expect(all).toEqual(iot.registry.listCertificates(false).map((c) => c.certificateId));
    expect(new Set(all).size).toBe(all.length);
    const ascending = await client.send(new ListCertificatesCommand({ ascendingOrder: true, pageSize: 250 }));
    expect(ascending.certificates!.map((c) => c.certificateId)).toEqual([...all].reverse());
    await expect(client.send(new ListCertificatesCommand({ marker: 'bogus' }))).rejects.toMatchObject({ name: 'InvalidRequestException' });
  });

  it('creates keys and certificate, lists things, and answers DescribeEndpoint with the local data endpoint', async () => {
    const created = await client.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
    expect(created.keyPair?.PrivateKey).toContain('BEGIN PRIVATE KEY');
    expect(new X509Certificate(created.certificatePem!).checkPrivateKey((await import('node:crypto')).createPrivateKey(created.keyPair!.PrivateKey!))).toBe(true);
    await client.send(new CreateThingCommand({ thingName: 'dev-list', attributePayload: { attributes: { fleet: 'a' } } }));
    const things = await client.send(new ListThingsCommand({ attributeName: 'fleet', attributeValue: 'a' }));
    expect(things.things?.map((t) => t.thingName)).toEqual(['dev-list']);
    expect((await client.send(new DescribeEndpointCommand({ endpointType: 'iot:Data-ATS' }))).endpointAddress).toBe('localhost:4566');
  });

  it('creates, gets and lists the topic rules Rotor deploys, and refuses SQL it does not support', async () => {
    const ruleName = ruleNameFor('csr_res');
    await client.send(new CreateTopicRuleCommand({
      ruleName,
      topicRulePayload: { sql: ruleSqlFor('csr_res'), actions: [{ lambda: { functionArn: 'arn:aws:lambda:us-east-1:000000000000:function:rotor-device-message' } }] },
    }));
    const got = await client.send(new GetTopicRuleCommand({ ruleName }));
    expect(got.rule?.sql).toBe(ruleSqlFor('csr_res'));
    expect(got.rule?.actions?.[0]?.lambda?.functionArn).toContain('rotor-device-message');
    expect((await client.send(new ListTopicRulesCommand({}))).rules?.map((r) => r.topicPattern)).toContain('management/topic/+/csr_res');
    await expect(client.send(new CreateTopicRuleCommand({
      ruleName: 'bad_rule',
      topicRulePayload: { sql: "SELECT * FROM 'a/b' WHERE x = 1", actions: [{ lambda: { functionArn: 'f' } }] },
    }))).rejects.toMatchObject({ name: 'SqlParseException' });
  });

  it('answers an unknown operation with UnknownOperationException naming method and path', async () => {
    const response = await fetch(`${harness.endpoint}/no/such/thing`, { method: 'PATCH' });
    expect(response.status).toBe(404);
    expect(response.headers.get('x-amzn-errortype')).toBe('UnknownOperationException');
    expect(((await response.json()) as { message: string }).message).toContain('PATCH /no/such/thing');
  });

  it('counts API calls per operation', () => {
    const counts = iot.controlPlane.callCounts();
    expect(counts.CreateCertificateFromCsr).toBeGreaterThanOrEqual(6);
    expect(counts.DeleteCertificate).toBe(5);
  });
});
