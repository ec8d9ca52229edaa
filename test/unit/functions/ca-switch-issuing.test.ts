import { DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { ISSUING_CA_PK, ISSUING_CA_SK } from '../../../domain/ca-rollover.js';
import { switchIssuing, type SwitchIssuingDeps } from '../../../functions/ca-switch-issuing.js';
import { awsErrors, clients } from '../../fixtures/aws.js';
import { fakeClock } from '../../fixtures/clock.js';
import { recordingTelemetry } from '../../fixtures/telemetry.js';

const db = mockClient(DynamoDBDocumentClient);
const OLD = 'a'.repeat(64);
const NEW = 'b'.repeat(64);
const NEW_ARN = 'arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/11111111-2222-3333-4444-555555555555';
const event = { rolloverId: 'ca-rollover-1', executionArn: 'arn:aws:states:us-east-1:123456789012:execution:rotor-ca-rollover:ca-rollover-1', cas: { oldCaCertificateId: OLD, newCaCertificateId: NEW, newPrivateCaArn: NEW_ARN } };
const deps = (signer = 'private-ca'): SwitchIssuingDeps => ({ db: clients.db(), tableName: 'rotations', signer, clock: fakeClock(), telemetry: recordingTelemetry() });

beforeEach(() => {
  db.reset();
  db.on(UpdateCommand).resolves({});
});

describe('Switch issuing CA', () => {
  it('names the new CA in the issuing-CA item, only over nothing, the old CA or itself, then starts the progress item', async () => {
    await expect(switchIssuing(event, deps())).resolves.toEqual({ issuingCaArn: NEW_ARN });
    const [item, progress] = db.commandCalls(UpdateCommand).map((call) => call.args[0].input);
    expect(item.Key).toEqual({ pk: ISSUING_CA_PK, sk: ISSUING_CA_SK });
    expect(item.ConditionExpression).toBe('attribute_not_exists(pk) OR caCertificateId = :old OR caCertificateId = :new');
    expect(item.ExpressionAttributeValues).toMatchObject({ ':arn': NEW_ARN, ':new': NEW, ':old': OLD });
    expect(progress.Key).toEqual({ pk: `ca-rollover#${OLD}`, sk: 'progress' });
  });

  it('stops with IssuingCaConflict when another rollover made a third CA the issuing one', async () => {
    db.on(UpdateCommand).rejectsOnce(awsErrors.conditionFailed());
    await expect(switchIssuing(event, deps())).rejects.toMatchObject({ name: 'IssuingCaConflict' });
    expect(db.commandCalls(UpdateCommand)).toHaveLength(1);
  });

  it('refuses a deployment that does not sign with private-ca: no certificate would come from the new CA', async () => {
    await expect(switchIssuing(event, deps('aws-iot'))).rejects.toMatchObject({ name: 'SignerNotPrivateCa' });
    expect(db.commandCalls(UpdateCommand)).toHaveLength(0);
  });
});
