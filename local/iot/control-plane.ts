import { AwsError, type EdgeRequest, type EdgeResponse, type LocalService } from '../types.js';
import type { AccountAuditConfiguration, AuditCheckConfiguration, AuditNotificationTarget, DeviceDefenderAudit, AuditFinding, AuditTask } from './audit.js';
import type { CaCertificateRecord, CertificateRecord, IotRegistry } from './registry.js';
import {
  bodyInteger,
  compileRoutes,
  dispatchRoute, routeOperation,
  epochSeconds,
  optionalString,
  page,
  parseTimestamp,
  queryBoolean,
  queryInteger,
  requiredString,
  type JsonObject,
  type Route,
} from './rest-json.js';
import type { RulesEngine, TopicRule } from './rules.js';

export interface ControlPlaneOptions {
  registry: IotRegistry;
  audit: DeviceDefenderAudit;
  rules: RulesEngine;
  /** What DescribeEndpoint answers for iot:Data-ATS (host[:port] of the local data endpoint). */
  dataEndpoint: () => string;
}

function certificateDescription(c: CertificateRecord): JsonObject {
  return {
    certificateArn: c.certificateArn,
    certificateId: c.certificateId,
    caCertificateId: c.caCertificateId,
    status: c.status,
    certificatePem: c.certificatePem,
    ownedBy: c.certificateArn.split(':')[4],
    creationDate: epochSeconds(c.creationDate),
    lastModifiedDate: epochSeconds(c.lastModifiedDate),
    customerVersion: 1,
    generationId: c.generationId,
    validity: { notBefore: epochSeconds(c.notBefore), notAfter: epochSeconds(c.notAfter) },
    certificateMode: c.certificateMode ?? 'DEFAULT',
  };
}

function caCertificateDescription(c: CaCertificateRecord): JsonObject {
  return {
    certificateArn: c.certificateArn,
    certificateId: c.certificateId,
    status: c.status,
    certificatePem: c.certificatePem,
    ownedBy: c.certificateArn.split(':')[4],
    creationDate: epochSeconds(c.creationDate),
    autoRegistrationStatus: c.autoRegistrationStatus,
    lastModifiedDate: epochSeconds(c.lastModifiedDate),
    customerVersion: c.customerVersion,
    generationId: c.generationId,
    validity: { notBefore: epochSeconds(c.notBefore), notAfter: epochSeconds(c.notAfter) },
    certificateMode: c.certificateMode,
  };
}

function certificateSummary(c: CertificateRecord): JsonObject {
  return { certificateArn: c.certificateArn, certificateId: c.certificateId, status: c.status, certificateMode: c.certificateMode ?? 'DEFAULT', creationDate: epochSeconds(c.creationDate) };
}

function taskJson(task: AuditTask): JsonObject {
  const details = Object.values(task.auditDetails);
  const count = (status: string) => details.filter((d) => d.checkRunStatus === status).length;
  return {
    taskStatus: task.taskStatus,
    taskType: task.taskType,
    taskStartTime: epochSeconds(task.taskStartTime),
    taskStatistics: {
      totalChecks: details.length,
      inProgressChecks: count('IN_PROGRESS'),
      waitingForDataCollectionChecks: 0,
      compliantChecks: count('COMPLETED_COMPLIANT'),
      nonCompliantChecks: count('COMPLETED_NON_COMPLIANT'),
      failedChecks: count('FAILED'),
      canceledChecks: 0,
    },
    auditDetails: task.auditDetails,
  };
}

function findingJson(f: AuditFinding): JsonObject {
  return { ...f, taskStartTime: epochSeconds(f.taskStartTime), findingTime: epochSeconds(f.findingTime) };
}

function ruleJson(rule: TopicRule): JsonObject {
  return {
    ruleName: rule.ruleName,
    sql: rule.sql,
    description: rule.description,
    createdAt: epochSeconds(rule.createdAt),
    actions: [rule.queueUrl ? { sqs: { queueUrl: rule.queueUrl, useBase64: false } } : { lambda: { functionArn: rule.functionArn } }],
    ruleDisabled: rule.ruleDisabled ?? false,
    awsIotSqlVersion: rule.awsIotSqlVersion ?? '2016-03-23',
  };
}

/**
 * The AWS IoT control plane (signing name 'iot', REST-JSON) over the local registry, audit
 * and rules, so the unmodified @aws-sdk/client-iot talks to it. Counts calls per operation:
 * the demo reports how many AWS API calls a rotation costs.
 */
export class IotControlPlane implements LocalService {
  readonly signingNames = ['iot'] as const;
  private readonly routes;
  private readonly calls = new Map<string, number>();

  constructor(private readonly options: ControlPlaneOptions) {
    this.routes = compileRoutes(this.routeTable());
  }

  operationOf(request: EdgeRequest): string | undefined {
    return routeOperation(this.routes, request);
  }

  handle(request: EdgeRequest): Promise<EdgeResponse> {
    return dispatchRoute(this.routes, request, (operation) => this.calls.set(operation, (this.calls.get(operation) ?? 0) + 1));
  }

  callCounts(): Record<string, number> {
    return Object.fromEntries(this.calls);
  }

  resetCallCounts(): void {
    this.calls.clear();
  }

  private routeTable(): Route[] {
    const { registry, audit, rules } = this.options;
    const principalHeader = (request: EdgeRequest): string => {
      const principal = request.headers['x-amzn-principal'];
      if (!principal) throw new AwsError('InvalidRequestException', 'the x-amzn-principal header is required');
      return principal;
    };
    return [
      // ---- certificates
      {
        operation: 'CreateCertificateFromCsr', method: 'POST', path: '/certificates',
        handler: async ({ request, body }) => {
          const record = await registry.createCertificateFromCsr(requiredString(body, 'certificateSigningRequest'), queryBoolean(request.query, 'setAsActive') ?? false);
          return { certificateArn: record.certificateArn, certificateId: record.certificateId, certificatePem: record.certificatePem };
        },
      },
      {
        operation: 'CreateKeysAndCertificate', method: 'POST', path: '/keys-and-certificate',
        handler: async ({ request }) => {
          const record = await registry.createKeysAndCertificate(queryBoolean(request.query, 'setAsActive') ?? false);
          return {
            certificateArn: record.certificateArn, certificateId: record.certificateId, certificatePem: record.certificatePem,
            keyPair: { PublicKey: record.publicKeyPem, PrivateKey: record.privateKeyPem },
          };
        },
      },
      {
        operation: 'DescribeCertificate', method: 'GET', path: '/certificates/{certificateId}',
        handler: ({ params }) => ({ certificateDescription: certificateDescription(registry.describeCertificate(params.certificateId)) }),
      },
      {
        operation: 'UpdateCertificate', method: 'PUT', path: '/certificates/{certificateId}',
        handler: ({ request, params }) => {
          const newStatus = request.query.get('newStatus');
          if (!newStatus) throw new AwsError('InvalidRequestException', 'newStatus is required');
          registry.updateCertificate(params.certificateId, newStatus);
        },
      },
      {
        operation: 'DeleteCertificate', method: 'DELETE', path: '/certificates/{certificateId}',
        handler: ({ request, params }) => registry.deleteCertificate(params.certificateId, queryBoolean(request.query, 'forceDelete') ?? false),
      },
      {
        operation: 'ListCertificates', method: 'GET', path: '/certificates',
        handler: ({ request }) => {
          const all = registry.listCertificates(queryBoolean(request.query, 'isAscendingOrder') ?? false);
          const { items, next } = page(all, queryInteger(request.query, 'pageSize', 1, 250) ?? 25, request.query.get('marker') ?? undefined);
          return {
            certificates: items.map(certificateSummary),
            nextMarker: next,
          };
        },
      },
      // ---- CA certificates
      {
        operation: 'GetRegistrationCode', method: 'GET', path: '/registrationcode',
        handler: () => ({ registrationCode: registry.registrationCode() }),
      },
      {
        operation: 'DeleteRegistrationCode', method: 'DELETE', path: '/registrationcode',
        handler: () => registry.deleteRegistrationCode(),
      },
      {
        operation: 'RegisterCACertificate', method: 'POST', path: '/cacertificate',
        handler: ({ request, body }) => {
          const record = registry.registerCaCertificate({
            caCertificatePem: requiredString(body, 'caCertificate'),
            verificationCertificatePem: optionalString(body, 'verificationCertificate'),
            setAsActive: queryBoolean(request.query, 'setAsActive') ?? false,
            allowAutoRegistration: queryBoolean(request.query, 'allowAutoRegistration') ?? false,
            certificateMode: optionalString(body, 'certificateMode'),
            registrationConfig: body.registrationConfig as Record<string, string> | undefined,
          });
          return { certificateArn: record.certificateArn, certificateId: record.certificateId };
        },
      },
      {
        operation: 'DescribeCACertificate', method: 'GET', path: '/cacertificate/{certificateId}',
        handler: ({ params }) => {
          const record = registry.describeCaCertificate(params.certificateId);
          return { certificateDescription: caCertificateDescription(record), registrationConfig: record.registrationConfig ?? {} };
        },
      },
      {
        operation: 'ListCACertificates', method: 'GET', path: '/cacertificates',
        handler: ({ request }) => {
          const all = registry.listCaCertificates(queryBoolean(request.query, 'isAscendingOrder') ?? false);
          const { items, next } = page(all, queryInteger(request.query, 'pageSize', 1, 250) ?? 25, request.query.get('marker') ?? undefined);
          return {
            certificates: items.map((c) => ({ certificateArn: c.certificateArn, certificateId: c.certificateId, status: c.status, creationDate: epochSeconds(c.creationDate) })),
            nextMarker: next,
          };
        },
      },
      {
        operation: 'UpdateCACertificate', method: 'PUT', path: '/cacertificate/{certificateId}',
        handler: ({ request, params, body }) => registry.updateCaCertificate(params.certificateId, {
          newStatus: request.query.get('newStatus') ?? undefined,
          newAutoRegistrationStatus: request.query.get('newAutoRegistrationStatus') ?? undefined,
          registrationConfig: body.registrationConfig as Record<string, string> | undefined,
          removeAutoRegistration: body.removeAutoRegistration === true,
        }),
      },
      {
        operation: 'ListCertificatesByCA', method: 'GET', path: '/certificates-by-ca/{caCertificateId}',
        handler: ({ request, params }) => {
          const all = registry.certificatesByCa(params.caCertificateId, queryBoolean(request.query, 'isAscendingOrder') ?? false);
          const { items, next } = page(all, queryInteger(request.query, 'pageSize', 1, 250) ?? 25, request.query.get('marker') ?? undefined);
          return { certificates: items.map(certificateSummary), nextMarker: next };
        },
      },
      {
        operation: 'RegisterCertificate', method: 'POST', path: '/certificate/register',
        handler: ({ request, body }) => {
          const record = registry.registerCertificate({
            certificatePem: requiredString(body, 'certificatePem'),
            caCertificatePem: optionalString(body, 'caCertificatePem'),
            setAsActive: queryBoolean(request.query, 'setAsActive'),
            status: optionalString(body, 'status'),
          });
          return { certificateArn: record.certificateArn, certificateId: record.certificateId };
        },
      },
      {
        operation: 'RegisterCertificateWithoutCA', method: 'POST', path: '/certificate/register-no-ca',
        handler: ({ body }) => {
          const record = registry.registerCertificateWithoutCa({ certificatePem: requiredString(body, 'certificatePem'), status: optionalString(body, 'status') });
          return { certificateArn: record.certificateArn, certificateId: record.certificateId };
        },
      },
      // ---- policies
      {
        operation: 'CreatePolicy', method: 'POST', path: '/policies/{policyName}',
        handler: ({ params, body }) => {
          const p = registry.createPolicy(params.policyName, requiredString(body, 'policyDocument'));
          return { policyName: p.policyName, policyArn: p.policyArn, policyDocument: p.policyDocument, policyVersionId: '1' };
        },
      },
      {
        operation: 'GetPolicy', method: 'GET', path: '/policies/{policyName}',
        handler: ({ params }) => {
          const p = registry.getPolicy(params.policyName);
          return {
            policyName: p.policyName, policyArn: p.policyArn, policyDocument: p.policyDocument, defaultVersionId: '1',
            creationDate: epochSeconds(p.creationDate), lastModifiedDate: epochSeconds(p.lastModifiedDate), generationId: p.generationId,
          };
        },
      },
      {
        operation: 'ListPolicies', method: 'GET', path: '/policies',
        handler: ({ request }) => {
          const all = registry.listPolicies(queryBoolean(request.query, 'isAscendingOrder') ?? false);
          const { items, next } = page(all, queryInteger(request.query, 'pageSize', 1, 250) ?? 25, request.query.get('marker') ?? undefined);
          return { policies: items.map((p) => ({ policyName: p.policyName, policyArn: p.policyArn })), nextMarker: next };
        },
      },
      {
        operation: 'AttachPolicy', method: 'PUT', path: '/target-policies/{policyName}',
        handler: ({ params, body }) => registry.attachPolicy(params.policyName, requiredString(body, 'target')),
      },
      {
        operation: 'DetachPolicy', method: 'POST', path: '/target-policies/{policyName}',
        handler: ({ params, body }) => registry.detachPolicy(params.policyName, requiredString(body, 'target')),
      },
      {
        // recursive would add thing-group policies; the local registry has no thing groups.
        operation: 'ListAttachedPolicies', method: 'POST', path: '/attached-policies/{target}',
        handler: ({ request, params }) => {
          const names = registry.attachedPolicies(params.target);
          const { items, next } = page(names, queryInteger(request.query, 'pageSize', 1, 250) ?? 25, request.query.get('marker') ?? undefined);
          return { policies: items.map((name) => ({ policyName: name, policyArn: registry.policyArn(name) })), nextMarker: next };
        },
      },
      {
        operation: 'ListTargetsForPolicy', method: 'POST', path: '/policy-targets/{policyName}',
        handler: ({ request, params }) => {
          const { items, next } = page(registry.targetsForPolicy(params.policyName), queryInteger(request.query, 'pageSize', 1, 250) ?? 25, request.query.get('marker') ?? undefined);
          return { targets: items, nextMarker: next };
        },
      },
      // ---- things
      {
        operation: 'CreateThing', method: 'POST', path: '/things/{thingName}',
        handler: ({ params, body }) => {
          const payload = (body.attributePayload ?? {}) as { attributes?: Record<string, string> };
          const t = registry.createThing(params.thingName, payload.attributes ?? {});
          return { thingName: t.thingName, thingArn: t.thingArn, thingId: t.thingId };
        },
      },
      {
        operation: 'DescribeThing', method: 'GET', path: '/things/{thingName}',
        handler: ({ params }) => {
          const t = registry.describeThing(params.thingName);
          return { defaultClientId: t.thingName, thingName: t.thingName, thingId: t.thingId, thingArn: t.thingArn, attributes: t.attributes, version: t.version };
        },
      },
      {
        operation: 'ListThings', method: 'GET', path: '/things',
        handler: ({ request }) => {
          const name = request.query.get('attributeName');
          const value = request.query.get('attributeValue');
          const all = registry.listThings().filter((t) => !name || (value === null ? name in t.attributes : t.attributes[name] === value));
          const { items, next } = page(all, queryInteger(request.query, 'maxResults', 1, 250) ?? 50, request.query.get('nextToken') ?? undefined);
          return { things: items.map((t) => ({ thingName: t.thingName, thingArn: t.thingArn, attributes: t.attributes, version: t.version })), nextToken: next };
        },
      },
      {
        operation: 'DeleteThing', method: 'DELETE', path: '/things/{thingName}',
        handler: ({ request, params }) => registry.deleteThing(params.thingName, queryInteger(request.query, 'expectedVersion', 0, Number.MAX_SAFE_INTEGER)),
      },
      {
        operation: 'AttachThingPrincipal', method: 'PUT', path: '/things/{thingName}/principals',
        handler: ({ request, params }) => registry.attachThingPrincipal(params.thingName, principalHeader(request)),
      },
      {
        operation: 'DetachThingPrincipal', method: 'DELETE', path: '/things/{thingName}/principals',
        handler: ({ request, params }) => registry.detachThingPrincipal(params.thingName, principalHeader(request)),
      },
      {
        operation: 'ListThingPrincipals', method: 'GET', path: '/things/{thingName}/principals',
        handler: ({ request, params }) => {
          const { items, next } = page(registry.thingPrincipals(params.thingName), queryInteger(request.query, 'maxResults', 1, 250) ?? 25, request.query.get('nextToken') ?? undefined);
          return { principals: items, nextToken: next };
        },
      },
      {
        operation: 'ListPrincipalThings', method: 'GET', path: '/principals/things',
        handler: ({ request }) => {
          const { items, next } = page(registry.principalThings(principalHeader(request)), queryInteger(request.query, 'maxResults', 1, 250) ?? 25, request.query.get('nextToken') ?? undefined);
          return { things: items, nextToken: next };
        },
      },
      {
        operation: 'DescribeEndpoint', method: 'GET', path: '/endpoint',
        handler: ({ request }) => {
          const type = request.query.get('endpointType') ?? 'iot:Data';
          if (type !== 'iot:Data' && type !== 'iot:Data-ATS') {
            throw new AwsError('InvalidRequestException', `endpointType ${type} is not served locally (iot:Data-ATS and iot:Data are)`);
          }
          return { endpointAddress: this.options.dataEndpoint() };
        },
      },
      // ---- Device Defender audit
      {
        operation: 'UpdateAccountAuditConfiguration', method: 'PATCH', path: '/audit/configuration',
        handler: ({ body }) => {
          audit.updateConfiguration({
            roleArn: optionalString(body, 'roleArn'),
            auditNotificationTargetConfigurations: body.auditNotificationTargetConfigurations as Record<string, AuditNotificationTarget> | undefined,
            auditCheckConfigurations: body.auditCheckConfigurations as Record<string, AuditCheckConfiguration> | undefined,
          } as Partial<AccountAuditConfiguration>);
        },
      },
      {
        operation: 'DescribeAccountAuditConfiguration', method: 'GET', path: '/audit/configuration',
        handler: () => ({ ...audit.describeConfiguration() }),
      },
      {
        operation: 'StartOnDemandAuditTask', method: 'POST', path: '/audit/tasks',
        handler: ({ body }) => {
          const names = body.targetCheckNames;
          if (!Array.isArray(names) || !names.every((n): n is string => typeof n === 'string')) {
            throw new AwsError('InvalidRequestException', 'targetCheckNames must be a list of check names');
          }
          return { taskId: audit.startOnDemandAuditTask(names) };
        },
      },
      {
        operation: 'DescribeAuditTask', method: 'GET', path: '/audit/tasks/{taskId}',
        handler: ({ params }) => taskJson(audit.describeTask(params.taskId)),
      },
      {
        operation: 'ListAuditTasks', method: 'GET', path: '/audit/tasks',
        handler: ({ request }) => {
          const startTime = parseTimestamp(request.query.get('startTime') ?? undefined, 'startTime');
          const endTime = parseTimestamp(request.query.get('endTime') ?? undefined, 'endTime');
          if (!startTime || !endTime) throw new AwsError('InvalidRequestException', 'startTime and endTime are required');
          const all = audit.listTasks({ startTime, endTime, taskStatus: request.query.get('taskStatus') ?? undefined, taskType: request.query.get('taskType') ?? undefined });
          const { items, next } = page(all, queryInteger(request.query, 'maxResults', 1, 250) ?? 25, request.query.get('nextToken') ?? undefined);
          return { tasks: items.map((t) => ({ taskId: t.taskId, taskStatus: t.taskStatus, taskType: t.taskType })), nextToken: next };
        },
      },
      {
        operation: 'ListAuditFindings', method: 'POST', path: '/audit/findings',
        handler: ({ body }) => {
          const identifier = (body.resourceIdentifier ?? {}) as { deviceCertificateId?: string; caCertificateId?: string };
          const all = audit.listFindings({
            taskId: optionalString(body, 'taskId'),
            checkName: optionalString(body, 'checkName'),
            deviceCertificateId: identifier.deviceCertificateId,
            caCertificateId: identifier.caCertificateId,
            startTime: parseTimestamp(body.startTime, 'startTime'),
            endTime: parseTimestamp(body.endTime, 'endTime'),
          });
          const { items, next } = page(all, bodyInteger(body, 'maxResults', 1, 250) ?? 25, optionalString(body, 'nextToken'));
          return { findings: items.map(findingJson), nextToken: next };
        },
      },
      // ---- topic rules
      {
        operation: 'CreateTopicRule', method: 'POST', path: '/rules/{ruleName}',
        handler: ({ params, body }) => {
          const payload = (body.topicRulePayload ?? body) as JsonObject;
          const actions = payload.actions;
          if (!Array.isArray(actions) || actions.length !== 1) {
            throw new AwsError('InvalidRequestException', 'the local rules engine supports exactly one action per rule');
          }
          const { lambda, sqs } = actions[0] as { lambda?: { functionArn?: unknown }; sqs?: { queueUrl?: unknown; useBase64?: unknown } };
          const action = lambda && typeof lambda.functionArn === 'string' ? { functionArn: lambda.functionArn } : sqs && typeof sqs.queueUrl === 'string' && sqs.useBase64 !== true ? { queueUrl: sqs.queueUrl } : undefined;
          if (!action) {
            throw new AwsError('InvalidRequestException', 'the local rules engine supports lambda actions and sqs actions (useBase64 false) only');
          }
          rules.createRule({
            ruleName: params.ruleName,
            sql: requiredString(payload, 'sql'),
            ...action,
            description: optionalString(payload, 'description'),
            ruleDisabled: payload.ruleDisabled === true,
            awsIotSqlVersion: optionalString(payload, 'awsIotSqlVersion'),
          });
        },
      },
      {
        operation: 'GetTopicRule', method: 'GET', path: '/rules/{ruleName}',
        handler: ({ params }) => {
          const rule = rules.getRule(params.ruleName);
          return { ruleArn: rule.ruleArn, rule: ruleJson(rule) };
        },
      },
      {
        operation: 'ListTopicRules', method: 'GET', path: '/rules',
        handler: ({ request }) => {
          const all = rules.listRules(request.query.get('topic') ?? undefined);
          const { items, next } = page(all, queryInteger(request.query, 'maxResults', 1, 10000) ?? 1000, request.query.get('nextToken') ?? undefined);
          return {
            rules: items.map((r) => ({ ruleArn: r.ruleArn, ruleName: r.ruleName, topicPattern: r.parsed.topicFilter, createdAt: epochSeconds(r.createdAt), ruleDisabled: r.ruleDisabled ?? false })),
            nextToken: next,
          };
        },
      },
      {
        operation: 'DeleteTopicRule', method: 'DELETE', path: '/rules/{ruleName}',
        handler: ({ params }) => rules.deleteRule(params.ruleName),
      },
    ];
  }
}
