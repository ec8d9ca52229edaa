import { randomBytes } from 'node:crypto';
import { MASKED, maskTokens, maskTokenText } from '../../../../local/console/mask';

const localToken = (): string => `AQ${randomBytes(192).toString('base64url')}`;
/** AWS's tokens are long base64 runs (around 700 characters). */
const awsToken = (): string => randomBytes(520).toString('base64');

describe('maskTokens', () => {
  it('masks members named like a token, at any depth, and keeps JSONPath references to one', () => {
    const token = awsToken();
    const masked = maskTokens({ a: { taskToken: token, list: [{ TaskToken: token }] }, Parameters: { 'taskToken.$': '$$.Task.Token' }, thing: 'pump-7' });
    expect(masked).toEqual({ a: { taskToken: MASKED, list: [{ TaskToken: MASKED }] }, Parameters: { 'taskToken.$': '$$.Task.Token' }, thing: 'pump-7' });
  });

  it('masks inside JSON carried as a string (a history event\'s input), keeping it JSON', () => {
    const token = localToken();
    const event = { id: 8, taskScheduledEventDetails: { parameters: JSON.stringify({ Payload: { taskToken: token, thingName: 'pump-7' } }) } };
    const masked = maskTokens(event);
    expect(JSON.stringify(masked)).not.toContain(token);
    expect(JSON.parse(masked.taskScheduledEventDetails.parameters)).toEqual({ Payload: { taskToken: MASKED, thingName: 'pump-7' } });
  });

  it('masks a token by its shape where no name says it is one', () => {
    const local = localToken();
    const aws = awsToken();
    const masked = maskTokens({ cause: `answer for ${local} was late`, note: [`x ${aws} y`] });
    expect(masked).toEqual({ cause: `answer for ${MASKED} was late`, note: [`x ${MASKED} y`] });
    expect(maskTokenText(`<td>${local}</td>`)).toBe(`<td>${MASKED}</td>`);
  });

  it('leaves what is not a token alone: certificate ids, PEM bodies, short strings', () => {
    const value = { certificateId: 'ab'.repeat(32), pem: `-----BEGIN CERTIFICATE-----\n${'QUJD'.repeat(16)}\n${'QUJD'.repeat(16)}\n-----END CERTIFICATE-----\n`, n: 3, flag: true, none: null };
    expect(maskTokens(value)).toEqual(value);
  });
});
