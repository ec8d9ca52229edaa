import { CreateThingCommand, IoTClient, ListThingsCommand } from '@aws-sdk/client-iot';
import { ListTopicsCommand, SNSClient } from '@aws-sdk/client-sns';
import { EdgeServer } from '../../../../local/edge/edge-server';
import { FaultError, FaultInjector, MAX_THROTTLE_COUNT, parseFaultRequest } from '../../../../local/edge/faults';
import { DeviceDefenderAudit } from '../../../../local/iot/audit';
import { LocalCa } from '../../../../local/iot/ca';
import { IotControlPlane } from '../../../../local/iot/control-plane';
import { IotRegistry } from '../../../../local/iot/registry';
import { RulesEngine } from '../../../../local/iot/rules';
import { SnsService } from '../../../../local/sns/sns-service';
import type { LambdaInvoker, SnsPublisher } from '../../../../local/types';

/**
 * The local-only throttling hook: the next N calls of one operation answer exactly as AWS
 * throttles (400, x-amzn-ErrorType ThrottlingException, {"message":"Rate exceeded"}), through
 * the real edge and the real IoT control plane, then calls go through again.
 */
const noLambda: LambdaInvoker = {
  invoke: async () => ({ ok: false, error: { errorType: 'ResourceNotFoundException', errorMessage: 'no functions in this test' } }),
};
const noSns: SnsPublisher = { publish: async () => ({ messageId: 'unused' }) };
const credentials = { accessKeyId: 'unit', secretAccessKey: 'unit' };

describe('FaultInjector', () => {
  const injector = (): FaultInjector => new FaultInjector(() => ['iot', 'sns']);

  it('throttles exactly the next N calls of the named operation, then lets calls through', () => {
    // Prepare
    const faults = injector();
    faults.throttle('iot', 'UpdateCertificate', 2);
    // Act
    const answers = [
      faults.take('iot', 'DescribeCertificate'),
      faults.take('iot', 'UpdateCertificate'),
      faults.take('sns', 'UpdateCertificate'),
      faults.take('iot', 'UpdateCertificate'),
      faults.take('iot', 'UpdateCertificate'),
    ];
    // Assess
    expect(answers.map((a) => a?.code)).toEqual([undefined, 'ThrottlingException', undefined, 'ThrottlingException', undefined]);
    expect(answers[1]).toEqual({ code: 'ThrottlingException', message: 'Rate exceeded', status: 400 });
    expect(faults.pending()).toEqual([]);
    expect(faults.injected()).toEqual({ 'iot:UpdateCertificate': 2 });
  });

  it('replaces a rule, removes it with count 0, and never throttles a call whose operation is unknown', () => {
    const faults = injector();
    faults.throttle('iot', 'DeleteCertificate', 5);
    faults.throttle('iot', 'DeleteCertificate', 1);
    expect(faults.pending()).toEqual([{ service: 'iot', operation: 'DeleteCertificate', remaining: 1 }]);
    faults.throttle('iot', 'DeleteCertificate', 0);
    expect(faults.pending()).toEqual([]);
    expect(faults.take('iot', undefined)).toBeUndefined();
  });

  it('refuses rules that could never fire or never stop, naming what is wrong', () => {
    const faults = injector();
    expect(() => faults.throttle('sqs', 'SendMessage', 1)).toThrow(new FaultError('service must be one of the signing names the edge serves (iot, sns), got "sqs"'));
    expect(() => faults.throttle('iot', 'iot:Publish', 1)).toThrow(/operation must be an API operation name/);
    expect(() => faults.throttle('iot', 'Publish', -1)).toThrow(/count must be an integer from 0 to/);
    expect(() => faults.throttle('iot', 'Publish', 1.5)).toThrow(/count must be an integer/);
    expect(() => faults.throttle('iot', 'Publish', MAX_THROTTLE_COUNT + 1)).toThrow(/count must be an integer/);
    expect(faults.pending()).toEqual([]);
  });
});

describe('throttling through the edge', () => {
  let edge: EdgeServer;
  let url: string;

  beforeAll(async () => {
    const ca = await LocalCa.create();
    const registry = new IotRegistry({ ca });
    const rules = new RulesEngine({ invoker: noLambda, region: 'us-east-1', account: '000000000000' });
    const audit = new DeviceDefenderAudit({ registry, sns: noSns });
    edge = new EdgeServer({ port: 0 });
    edge.register(new IotControlPlane({ registry, audit, rules, dataEndpoint: () => '127.0.0.1:0' }));
    edge.register(new SnsService({ invoker: noLambda }));
    url = await edge.start();
  });

  afterAll(async () => {
    await edge.stop();
  });

  beforeEach(() => {
    edge.faults.clear();
    edge.resetCalls();
  });

  it('answers a throttled IoT call as AWS does, and the SDK reads it as ThrottlingException', async () => {
    // Prepare
    edge.faults.throttle('iot', 'CreateThing', 1);
    const iot = new IoTClient({ endpoint: url, region: 'us-east-1', credentials, maxAttempts: 1 });
    try {
      // Act / Assess: the first call is throttled, the second reaches the registry.
      await expect(iot.send(new CreateThingCommand({ thingName: 'throttled-1' }))).rejects.toMatchObject({
        name: 'ThrottlingException',
        message: 'Rate exceeded',
        $metadata: { httpStatusCode: 400 },
      });
      await expect(iot.send(new CreateThingCommand({ thingName: 'throttled-1' }))).resolves.toMatchObject({ thingName: 'throttled-1' });
    } finally {
      iot.destroy();
    }
    expect(edge.calls()['iot:CreateThing']).toBe(2);
    expect(edge.faults.injected()).toEqual({ 'iot:CreateThing': 1 });
  });

  it('is absorbed by the SDK retry when fewer calls are throttled than it attempts', async () => {
    edge.faults.throttle('iot', 'ListThings', 1);
    const iot = new IoTClient({ endpoint: url, region: 'us-east-1', credentials, maxAttempts: 3 });
    try {
      const answer = await iot.send(new ListThingsCommand({}));
      expect(answer.$metadata.attempts).toBe(2);
    } finally {
      iot.destroy();
    }
    expect(edge.calls()['iot:ListThings']).toBe(2);
  });

  it('puts the exact AWS wire shape on a REST-JSON call and the caller protocol on others', async () => {
    edge.faults.throttle('iot', 'ListThings', 1);
    const scope = (service: string): string =>
      `AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/${service}/aws4_request, SignedHeaders=host, Signature=${'0'.repeat(64)}`;
    const rest = await fetch(`${url}/things`, { headers: { authorization: scope('iot') } });
    expect(rest.status).toBe(400);
    expect(rest.headers.get('x-amzn-errortype')).toBe('ThrottlingException');
    expect(rest.headers.get('x-amzn-requestid')).toMatch(/^[0-9a-f-]{36}$/);
    expect(await rest.json()).toEqual({ message: 'Rate exceeded' });

    edge.faults.throttle('sns', 'ListTopics', 1);
    const sns = new SNSClient({ endpoint: url, region: 'us-east-1', credentials, maxAttempts: 1 });
    try {
      await expect(sns.send(new ListTopicsCommand({}))).rejects.toMatchObject({ name: 'ThrottlingException', message: 'Rate exceeded' });
    } finally {
      sns.destroy();
    }
  });

  it('is driven by POST /_rotor/faults and shown by GET, refusing bad requests with 400', async () => {
    const set = await fetch(`${url}/_rotor/faults`, { method: 'POST', body: JSON.stringify({ service: 'iot', operation: 'UpdateCertificate', count: 3 }) });
    expect(set.status).toBe(200);
    expect(await set.json()).toEqual({ pending: [{ service: 'iot', operation: 'UpdateCertificate', remaining: 3 }], injected: {}, crashes: [], crashed: {} });
    expect(edge.faults.pending()).toEqual([{ service: 'iot', operation: 'UpdateCertificate', remaining: 3 }]);

    const bad = await fetch(`${url}/_rotor/faults`, { method: 'POST', body: JSON.stringify({ service: 'iot', operation: 'UpdateCertificate', count: 'lots' }) });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ code: 'FaultError', message: 'count must be an integer from 0 to 1000, got "lots"' });
    const notJson = await fetch(`${url}/_rotor/faults`, { method: 'POST', body: '{nope' });
    expect(notJson.status).toBe(400);

    const shown = await fetch(`${url}/_rotor/faults`);
    expect(await shown.json()).toEqual({ pending: [{ service: 'iot', operation: 'UpdateCertificate', remaining: 3 }], injected: {}, crashes: [], crashed: {} });
    const wrongMethod = await fetch(`${url}/_rotor/faults`, { method: 'DELETE' });
    expect(wrongMethod.status).toBe(405);
  });
});

describe('crash faults', () => {
  const injector = (): FaultInjector => {
    const faults = new FaultInjector(() => ['iot']);
    faults.knownFunctions = () => ['rotor-issue-certificate', 'rotor-retire-certificate'];
    return faults;
  };

  it('kills the next `times` invocations of a function after N AWS calls, by wiring or deployed name', () => {
    const faults = injector();
    expect(faults.crash('issue-certificate', 4, 2)).toEqual({ function: 'rotor-issue-certificate', afterAwsCalls: 4, remaining: 2, surface: 'Sandbox.Timedout' });

    expect(faults.takeCrash('rotor-retire-certificate')).toBeUndefined();
    expect(faults.takeCrash('rotor-issue-certificate')).toEqual({ afterAwsCalls: 4, surface: 'Sandbox.Timedout' });
    expect(faults.pendingCrashes()).toEqual([{ function: 'rotor-issue-certificate', afterAwsCalls: 4, remaining: 1, surface: 'Sandbox.Timedout' }]);
    expect(faults.takeCrash('rotor-issue-certificate')).toBeDefined();
    expect(faults.takeCrash('rotor-issue-certificate')).toBeUndefined();
    expect(faults.crashed()).toEqual({ 'rotor-issue-certificate': 2 });

    faults.crash('rotor-retire-certificate', 0, 1, 'Runtime.ExitError');
    expect(faults.takeCrash('rotor-retire-certificate')).toEqual({ afterAwsCalls: 0, surface: 'Runtime.ExitError' });
  });

  it.each([
    ['an unknown function', () => injector().crash('shred-certificates', 1), /deployed functions/],
    ['a negative call count', () => injector().crash('issue-certificate', -1), /afterAwsCalls/],
    ['a fractional times', () => injector().crash('issue-certificate', 1, 1.5), /times/],
    ['an unknown surface', () => injector().crash('issue-certificate', 1, 1, 'Bang' as never), /surface/],
  ])('refuses %s with a FaultError', (_name, act, message) => {
    expect(act).toThrow(FaultError);
    expect(act).toThrow(message);
  });

  it('reads both kinds of POST /_rotor/faults bodies', () => {
    expect(parseFaultRequest({ service: 'iot', operation: 'UpdateCertificate', count: 1 })).toEqual({ kind: 'throttle', service: 'iot', operation: 'UpdateCertificate', count: 1 });
    expect(parseFaultRequest({ kind: 'crash', function: 'issue-certificate', afterAwsCalls: 4 })).toEqual({
      kind: 'crash',
      function: 'issue-certificate',
      afterAwsCalls: 4,
      times: 1,
      surface: 'Sandbox.Timedout',
    });
    expect(() => parseFaultRequest({ kind: 'flood' })).toThrow(/kind must be/);
  });
});

describe('FaultInjector.onThrottleRulesChanged', () => {
  it('tells which services have throttle rules pending as rules are added, used up, removed and cleared', () => {
    // Prepare
    const faults = new FaultInjector(() => ['iot', 'dynamodb']);
    const seen: string[][] = [];
    faults.onThrottleRulesChanged = (services) => seen.push([...services].sort());
    // Act
    faults.throttle('dynamodb', 'GetItem', 1);
    faults.throttle('iot', 'UpdateCertificate', 2);
    faults.take('dynamodb', 'GetItem');
    faults.throttle('iot', 'UpdateCertificate', 0);
    faults.throttle('dynamodb', 'Query', 5);
    faults.clear();
    // Assess
    expect(seen).toEqual([['dynamodb'], ['dynamodb', 'iot'], ['iot'], [], ['dynamodb'], []]);
  });
});
