import type { CreateTableCommandInput } from '@aws-sdk/client-dynamodb';
import { loadWiring, type Wiring } from '../../wiring/index.js';

/** The rotation table as Terraform creates it (terraform/dynamodb.tf), from the wiring's keys. */
export function rotationTableInput(tableName: string, table: Wiring['table'] = loadWiring().table): CreateTableCommandInput {
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [
      { AttributeName: table.partitionKey, AttributeType: 'S' },
      { AttributeName: table.sortKey, AttributeType: 'S' },
      { AttributeName: table.statusIndex.partitionKey, AttributeType: 'S' },
      { AttributeName: table.statusIndex.sortKey, AttributeType: 'S' },
    ],
    KeySchema: [
      { AttributeName: table.partitionKey, KeyType: 'HASH' },
      { AttributeName: table.sortKey, KeyType: 'RANGE' },
    ],
    GlobalSecondaryIndexes: [
      {
        IndexName: table.statusIndex.name,
        KeySchema: [
          { AttributeName: table.statusIndex.partitionKey, KeyType: 'HASH' },
          { AttributeName: table.statusIndex.sortKey, KeyType: 'RANGE' },
        ],
        // Only what the operator CLI reads: task tokens stay out of the index (terraform/dynamodb.tf).
        Projection: { ProjectionType: 'INCLUDE', NonKeyAttributes: table.statusIndex.nonKeyAttributes },
      },
    ],
  };
}
