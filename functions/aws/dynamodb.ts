import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { retrySettings, type ClientOptions } from './retry.js';

/**
 * The rotation table through the document client: plain JS values in and out. Undefined
 * attributes are dropped rather than rejected, so optional fields need no special casing.
 */
export function tableClient(options: ClientOptions = {}): DynamoDBDocumentClient {
  return DynamoDBDocumentClient.from(new DynamoDBClient(retrySettings(options)), {
    marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: false },
  });
}
