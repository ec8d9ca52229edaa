import { Readable } from 'node:stream';
import { DescribeCertificateCommand, IoTClient } from '@aws-sdk/client-iot';
import { isThrottlingError, observeThrottles } from '../../../../functions/aws/throttling.js';

/**
 * The throttle observer on a real IoT client: the HTTP answers come from a request handler that
 * throttles as AWS does (HTTP 400 with x-amzn-ErrorType ThrottlingException), so the SDK's own
 * deserialiser and retry strategy run.
 */
function throttlingClient(answers: number[]): IoTClient {
  let calls = 0;
  return new IoTClient({
    region: 'us-east-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    maxAttempts: 3,
    retryStrategy: undefined,
    requestHandler: {
      handle: async () => {
        const status = answers[Math.min(calls++, answers.length - 1)];
        const ok = status === 200;
        const body = ok ? { certificateDescription: { certificateId: 'a'.repeat(64), status: 'ACTIVE' } } : { message: 'Rate exceeded' };
        return {
          response: {
            statusCode: status,
            headers: ok
              ? { 'content-type': 'application/json' }
              : { 'content-type': 'application/json', 'x-amzn-errortype': status === 400 ? 'ThrottlingException:http://internal.amazon.com/coral/com.amazonaws.iot/' : 'ResourceNotFoundException' },
            body: Readable.from([Buffer.from(JSON.stringify(body))]),
          },
        };
      },
    } as never,
  });
}

describe('the throttle observer middleware', () => {
  it('sees every throttled attempt, inside the SDK retries, and leaves the final error to the caller', async () => {
    // Prepare
    const seen: string[] = [];
    const client = observeThrottles(throttlingClient([400]), 'iot', (operation) => {
      seen.push(operation);
    });
    // Act
    const call = client.send(new DescribeCertificateCommand({ certificateId: 'a'.repeat(64) }));
    // Assess
    await expect(call).rejects.toMatchObject({ name: 'ThrottlingException' });
    expect(seen).toEqual(['iot:DescribeCertificate', 'iot:DescribeCertificate', 'iot:DescribeCertificate']);
  }, 20_000);

  it('counts the throttled attempts of a call that then succeeded', async () => {
    const seen: string[] = [];
    const client = observeThrottles(throttlingClient([400, 200]), 'iot', (operation) => {
      seen.push(operation);
    });
    const out = await client.send(new DescribeCertificateCommand({ certificateId: 'a'.repeat(64) }));
    expect(out.certificateDescription?.status).toBe('ACTIVE');
    expect(seen).toEqual(['iot:DescribeCertificate']);
  }, 20_000);

  it('reports nothing for other errors, and an observer that throws changes nothing', async () => {
    const seen: string[] = [];
    const other = observeThrottles(throttlingClient([404]), 'iot', (operation) => {
      seen.push(operation);
    });
    await expect(other.send(new DescribeCertificateCommand({ certificateId: 'a'.repeat(64) }))).rejects.toBeDefined();
    expect(seen).toEqual([]);
    const failing = observeThrottles(throttlingClient([400]), 'iot', () => {
      throw new Error('observer broke');
    });
    await expect(failing.send(new DescribeCertificateCommand({ certificateId: 'a'.repeat(64) }))).rejects.toMatchObject({ name: 'ThrottlingException' });
  }, 20_000);

  it('classifies throttling as the SDK does', () => {
    expect(isThrottlingError({ name: 'ThrottlingException' })).toBe(true);
    expect(isThrottlingError({ name: 'TooManyRequestsException' })).toBe(true);
    expect(isThrottlingError({ name: 'Whatever', $metadata: { httpStatusCode: 429 } })).toBe(true);
    expect(isThrottlingError({ name: 'ResourceNotFoundException', $metadata: { httpStatusCode: 404 } })).toBe(false);
    expect(isThrottlingError('ThrottlingException')).toBe(false);
  });
});
