import { GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { ISSUING_CA_PK, ISSUING_CA_SK, type IssuingCaItem } from '../../domain/ca-rollover.js';
import type { TableDeps } from './rotation-table.js';

/**
 * The issuing-CA item (domain/ca-rollover.ts): which Private CA signs device certificates now.
 * The private-ca signer reads it at every signature, strongly consistent, so that a rotation
 * signs with the CA that is current when it signs, whenever it started: a rotation in flight
 * across the switch gets a certificate of the new CA, never of the one being retired.
 */
export async function readIssuingCa(deps: TableDeps): Promise<IssuingCaItem | undefined> {
  const out = await deps.db.send(new GetCommand({ TableName: deps.tableName, Key: { pk: ISSUING_CA_PK, sk: ISSUING_CA_SK }, ConsistentRead: true }));
  return out.Item as IssuingCaItem | undefined;
}

export interface IssuingCaSwitch {
  caArn: string;
  caCertificateId: string;
  previousCaCertificateId: string;
  rolloverId: string;
  now: Date;
}

/**
 * Names the new CA as the issuing one, if the item is absent (the deployment's CA issues), or
 * already names the CA being replaced, or the new one (a retried switch). A third CA means
 * another rollover moved issuing elsewhere meanwhile: the write fails with
 * ConditionalCheckFailedException and this rollover stops rather than undo it.
 */
export async function switchIssuingCa(deps: TableDeps, change: IssuingCaSwitch): Promise<void> {
  await deps.db.send(
    new UpdateCommand({
      TableName: deps.tableName,
      Key: { pk: ISSUING_CA_PK, sk: ISSUING_CA_SK },
      UpdateExpression: 'SET caArn = :arn, caCertificateId = :new, previousCaCertificateId = :old, rolloverId = :rid, updatedAt = :now',
      ConditionExpression: 'attribute_not_exists(pk) OR caCertificateId = :old OR caCertificateId = :new',
      ExpressionAttributeValues: {
        ':arn': change.caArn,
        ':new': change.caCertificateId,
        ':old': change.previousCaCertificateId,
        ':rid': change.rolloverId,
        ':now': change.now.toISOString(),
      },
    }),
  );
}
