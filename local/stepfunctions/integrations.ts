import { randomUUID } from 'node:crypto';
import {
  DeleteItemCommand,
  type DeleteItemCommandInput,
  type DynamoDBClient,
  GetItemCommand,
  type GetItemCommandInput,
  PutItemCommand,
  type PutItemCommandInput,
  UpdateItemCommand,
  type UpdateItemCommandInput,
} from '@aws-sdk/client-dynamodb';
import { AwsError, type LambdaInvoker, type SnsPublisher } from '../types.js';
import { StatesFailure, runtimeError } from './errors.js';

/**
 * Task resources (service integrations): each turns the task's effective parameters into a
 * call and the call's outcome into AWS's result shape or AWS's error name.
 */

export interface IntegrationDeps {
  invoker: LambdaInvoker;
  dynamodb: DynamoDBClient;
  sns: SnsPublisher;
}

export type IntegrationPattern = 'request-response' | 'wait-for-task-token' | 'legacy-lambda';

export interface Integration {
  /** History's resourceType / resource, e.g. 'lambda' / 'invoke.waitForTaskToken'. */
  resourceType: string;
  resource: string;
  pattern: IntegrationPattern;
  call(parameters: unknown): Promise<unknown>;
}

/** The metadata AWS adds to every optimised integration's result. */
function sdkMetadata(requestId: string = randomUUID()): Record<string, unknown> {
  return {
    SdkHttpMetadata: {
      AllHttpHeaders: { 'x-amzn-RequestId': [requestId], 'Content-Type': ['application/json'] },
      HttpHeaders: { 'x-amzn-RequestId': requestId, 'Content-Type': 'application/json' },
      HttpStatusCode: 200,
    },
    SdkResponseMetadata: { RequestId: requestId },
  };
}

function asObject(parameters: unknown, resource: string): Record<string, unknown> {
  if (typeof parameters !== 'object' || parameters === null || Array.isArray(parameters)) {
    throw runtimeError(`The parameters of ${resource} must be an object, got ${JSON.stringify(parameters)}`);
  }
  return parameters as Record<string, unknown>;
}

/** The service-side name of an error thrown by an injected client. */
function serviceErrorName(error: unknown): string | undefined {
  if (error instanceof AwsError) return error.code;
  if (error instanceof Error && error.name && error.name !== 'Error' && error.name !== 'TypeError') return error.name;
  return undefined;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

const FUNCTION_ARN = /^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]+(:[A-Za-z0-9_$-]+)?$/;

async function invokeLambda(deps: IntegrationDeps, functionName: string, payload: unknown, invocationType: 'RequestResponse' | 'Event') {
  try {
    return await deps.invoker.invoke(functionName, payload, invocationType);
  } catch (error) {
    throw new StatesFailure(`Lambda.${serviceErrorName(error) ?? 'ServiceException'}`, errorMessage(error));
  }
}

/** A function error: error = errorType, cause = the error payload Lambda returned, as AWS reports it. */
function functionFailure(error: { errorType: string; errorMessage: string; trace?: string[] }): StatesFailure {
  return new StatesFailure(
    error.errorType || 'Lambda.Unknown',
    JSON.stringify({ errorMessage: error.errorMessage, errorType: error.errorType, trace: error.trace ?? [] }),
  );
}

function lambdaInvoke(deps: IntegrationDeps, pattern: 'request-response' | 'wait-for-task-token'): Integration {
  const resource = pattern === 'wait-for-task-token' ? 'invoke.waitForTaskToken' : 'invoke';
  return {
    resourceType: 'lambda',
    resource,
    pattern,
    async call(parameters) {
      const params = asObject(parameters, `lambda:${resource}`);
      const functionName = params.FunctionName;
      if (typeof functionName !== 'string' || functionName === '') throw runtimeError(`lambda:${resource} needs a FunctionName`);
      const invocationType = params.InvocationType === 'Event' ? 'Event' : 'RequestResponse';
      const outcome = await invokeLambda(deps, functionName, params.Payload ?? {}, invocationType);
      if (!outcome.ok) throw functionFailure(outcome.error);
      return {
        ExecutedVersion: '$LATEST',
        Payload: invocationType === 'Event' ? '' : outcome.payload,
        StatusCode: invocationType === 'Event' ? 202 : 200,
        ...sdkMetadata(),
      };
    },
  };
}

function legacyLambda(deps: IntegrationDeps, functionArn: string): Integration {
  return {
    resourceType: 'lambda',
    resource: functionArn,
    pattern: 'legacy-lambda',
    async call(parameters) {
      const outcome = await invokeLambda(deps, functionArn, parameters, 'RequestResponse');
      if (!outcome.ok) throw functionFailure(outcome.error);
      return outcome.payload;
    },
  };
}

type DynamoDbAction = 'getItem' | 'putItem' | 'updateItem' | 'deleteItem';

function dynamodbCommand(action: DynamoDbAction, input: Record<string, unknown>) {
  // Parameters are the low-level API's PascalCase input, so they pass through unchanged.
  switch (action) {
    case 'getItem':
      return new GetItemCommand(input as unknown as GetItemCommandInput);
    case 'putItem':
      return new PutItemCommand(input as unknown as PutItemCommandInput);
    case 'updateItem':
      return new UpdateItemCommand(input as unknown as UpdateItemCommandInput);
    case 'deleteItem':
      return new DeleteItemCommand(input as unknown as DeleteItemCommandInput);
  }
}

function dynamodb(deps: IntegrationDeps, action: DynamoDbAction): Integration {
  return {
    resourceType: 'dynamodb',
    resource: action,
    pattern: 'request-response',
    async call(parameters) {
      const input = asObject(parameters, `dynamodb:${action}`);
      let output: Record<string, unknown>;
      try {
        // The union of four commands defeats send()'s overloads; each returns its own output.
        output = (await deps.dynamodb.send(dynamodbCommand(action, input) as GetItemCommand)) as unknown as Record<string, unknown>;
      } catch (error) {
        throw new StatesFailure(`DynamoDB.${serviceErrorName(error) ?? 'AmazonDynamoDBException'}`, errorMessage(error));
      }
      const { $metadata, ...result } = output;
      const requestId = ($metadata as { requestId?: string } | undefined)?.requestId;
      return { ...result, ...sdkMetadata(requestId) };
    },
  };
}

function snsPublish(deps: IntegrationDeps, pattern: 'request-response' | 'wait-for-task-token'): Integration {
  return {
    resourceType: 'sns',
    resource: pattern === 'wait-for-task-token' ? 'publish.waitForTaskToken' : 'publish',
    pattern,
    async call(parameters) {
      const params = asObject(parameters, 'sns:publish');
      const topicArn = params.TopicArn ?? params.TargetArn;
      if (typeof topicArn !== 'string') throw runtimeError('sns:publish needs a TopicArn');
      const message = typeof params.Message === 'string' ? params.Message : JSON.stringify(params.Message);
      try {
        const { messageId } = await deps.sns.publish({
          topicArn,
          message,
          subject: typeof params.Subject === 'string' ? params.Subject : undefined,
          messageAttributes: params.MessageAttributes as Record<string, unknown> | undefined,
        });
        return { MessageId: messageId, ...sdkMetadata() };
      } catch (error) {
        throw new StatesFailure(`SNS.${serviceErrorName(error) ?? 'SnsException'}`, errorMessage(error));
      }
    },
  };
}

const DYNAMODB_ACTIONS: readonly DynamoDbAction[] = ['getItem', 'putItem', 'updateItem', 'deleteItem'];

/** The integration a Resource names, or undefined when this engine does not support it. */
export function resolveIntegration(resource: string, deps: IntegrationDeps): Integration | undefined {
  if (FUNCTION_ARN.test(resource)) return legacyLambda(deps, resource);
  const match = /^arn:aws[a-z-]*:states:::([a-z0-9-]+):([A-Za-z]+)(\.waitForTaskToken)?$/.exec(resource);
  if (!match) return undefined;
  const [, service, action, wait] = match;
  const pattern = wait ? 'wait-for-task-token' : 'request-response';
  if (service === 'lambda' && action === 'invoke') return lambdaInvoke(deps, pattern);
  if (service === 'sns' && action === 'publish') return snsPublish(deps, pattern);
  if (service === 'dynamodb' && !wait && (DYNAMODB_ACTIONS as readonly string[]).includes(action)) return dynamodb(deps, action as DynamoDbAction);
  return undefined;
}
