import { randomBytes, randomUUID } from 'node:crypto';
import { AUDIT_CHECKS, AuditCheck, CaAuditCheck, CaExpiryReason } from '../../domain/rotation.js';
import { AwsError, type SnsPublisher } from '../types.js';
import { CaCertificateStatus, CertificateStatus, type CaCertificateRecord, type CertificateRecord, type IotRegistry } from './registry.js';

/** The Device Defender checks the local audit runs: the ones Rotor acts on. */
const SUPPORTED_CHECKS: readonly string[] = [...AUDIT_CHECKS, CaAuditCheck.Expiring];
type SupportedCheck = AuditCheck | CaAuditCheck;
/** AWS's CA check has a fixed window: "expiring within 30 days or has expired". */
const CA_EXPIRATION_DAYS = 30;

/** AWS's configuration keys (ConfigName) and their defaults. */
export const CERT_AGE_THRESHOLD_IN_DAYS = 'CERT_AGE_THRESHOLD_IN_DAYS';
export const CERT_EXPIRATION_THRESHOLD_IN_DAYS = 'CERT_EXPIRATION_THRESHOLD_IN_DAYS';
const DEFAULT_AGE_DAYS = 365;
const DEFAULT_EXPIRATION_DAYS = 30;
const DAY_MS = 86_400_000;

export interface AuditCheckConfiguration {
  enabled: boolean;
  configuration?: Record<string, string>;
}

export interface AuditNotificationTarget {
  targetArn?: string;
  roleArn?: string;
  enabled?: boolean;
}

export interface AccountAuditConfiguration {
  roleArn?: string;
  auditNotificationTargetConfigurations: Record<string, AuditNotificationTarget>;
  auditCheckConfigurations: Record<string, AuditCheckConfiguration>;
}

export type AuditTaskStatus = 'IN_PROGRESS' | 'COMPLETED' | 'FAILED' | 'CANCELED';
export type CheckRunStatus = 'IN_PROGRESS' | 'COMPLETED_COMPLIANT' | 'COMPLETED_NON_COMPLIANT' | 'FAILED';

export interface AuditCheckDetails {
  checkRunStatus: CheckRunStatus;
  checkCompliant?: boolean;
  totalResourcesCount?: number;
  nonCompliantResourcesCount?: number;
  suppressedNonCompliantResourcesCount?: number;
  errorCode?: string;
  message?: string;
}

export interface AuditTask {
  taskId: string;
  taskType: 'ON_DEMAND_AUDIT_TASK';
  taskStatus: AuditTaskStatus;
  taskStartTime: Date;
  auditDetails: Record<string, AuditCheckDetails>;
}

export interface AuditFinding {
  findingId: string;
  taskId: string;
  checkName: SupportedCheck;
  taskStartTime: Date;
  findingTime: Date;
  severity: 'CRITICAL' | 'HIGH' | 'MEDIUM' | 'LOW';
  nonCompliantResource:
    | {
        resourceType: 'DEVICE_CERTIFICATE';
        resourceIdentifier: { deviceCertificateId: string; deviceCertificateArn: string };
        additionalInfo?: Record<string, string>;
      }
    | {
        resourceType: 'CA_CERTIFICATE';
        resourceIdentifier: { caCertificateId: string };
        additionalInfo?: Record<string, string>;
      };
  reasonForNonCompliance: string;
  reasonForNonComplianceCode: string;
  isSuppressed: boolean;
}

/** The audit-completion message Device Defender publishes to the configured SNS topic. */
export interface AuditNotification {
  accountId: string;
  taskId: string;
  taskStatus: AuditTaskStatus;
  taskType: 'ON_DEMAND_AUDIT_TASK' | 'SCHEDULED_AUDIT_TASK';
  scheduledAuditName?: string;
  failedChecksCount: number;
  canceledChecksCount: number;
  nonCompliantChecksCount: number;
  compliantChecksCount: number;
  totalChecksCount: number;
  /** Milliseconds since the epoch. */
  taskStartTime: number;
  auditDetails: {
    checkName: string;
    checkRunStatus: CheckRunStatus;
    nonCompliantResourcesCount: number;
    totalResourcesCount: number;
    suppressedNonCompliantResourceCount?: number;
    errorCode?: string;
    message?: string;
  }[];
}

export interface AuditOptions {
  registry: IotRegistry;
  sns: SnsPublisher;
  now?: () => Date;
  /** Checks enabled before any UpdateAccountAuditConfiguration (AWS: none). */
  initialConfiguration?: Partial<AccountAuditConfiguration>;
  onNotificationError?: (error: unknown, taskId: string) => void;
}

/**
 * Device Defender audit, limited to the two certificate checks that start rotations. An
 * on-demand task runs on the next tick (StartOnDemandAuditTask answers IN_PROGRESS first, as
 * AWS does), stores its findings, completes, then sends the completion notification.
 */
export class DeviceDefenderAudit {
  private configuration: AccountAuditConfiguration;
  private readonly tasks = new Map<string, AuditTask>();
  private readonly findings: AuditFinding[] = [];
  private readonly running = new Map<string, Promise<void>>();
  private readonly now: () => Date;

  constructor(private readonly options: AuditOptions) {
    this.now = options.now ?? (() => new Date());
    this.configuration = {
      roleArn: options.initialConfiguration?.roleArn,
      auditNotificationTargetConfigurations: { ...(options.initialConfiguration?.auditNotificationTargetConfigurations ?? {}) },
      auditCheckConfigurations: { ...(options.initialConfiguration?.auditCheckConfigurations ?? {}) },
    };
    for (const check of Object.keys(this.configuration.auditCheckConfigurations)) requireSupported(check);
  }

  describeConfiguration(): AccountAuditConfiguration {
    const checks: Record<string, AuditCheckConfiguration> = {};
    for (const check of SUPPORTED_CHECKS) checks[check] = this.configuration.auditCheckConfigurations[check] ?? { enabled: false };
    return { ...this.configuration, auditCheckConfigurations: checks };
  }

  /** Merges like AWS: only the checks and targets named change. */
  updateConfiguration(update: Partial<AccountAuditConfiguration>): void {
    for (const [check, config] of Object.entries(update.auditCheckConfigurations ?? {})) {
      requireSupported(check);
      if (typeof config?.enabled !== 'boolean') throw new AwsError('InvalidRequestException', `auditCheckConfigurations.${check}.enabled must be a boolean`);
      if (check === AuditCheck.Age && config.configuration?.[CERT_AGE_THRESHOLD_IN_DAYS] !== undefined) {
        const days = Number(config.configuration[CERT_AGE_THRESHOLD_IN_DAYS]);
        if (!Number.isInteger(days) || days < 30 || days > 3652) {
          throw new AwsError('InvalidRequestException', `${CERT_AGE_THRESHOLD_IN_DAYS} must be a whole number of days from 30 to 3652`);
        }
      }
    }
    for (const [kind, target] of Object.entries(update.auditNotificationTargetConfigurations ?? {})) {
      if (kind !== 'SNS') throw new AwsError('InvalidRequestException', `notification target type ${kind} is not supported (only SNS)`);
      if (target.enabled && !target.targetArn) throw new AwsError('InvalidRequestException', 'an enabled SNS notification target needs a targetArn');
    }
    this.configuration = {
      roleArn: update.roleArn ?? this.configuration.roleArn,
      auditNotificationTargetConfigurations: { ...this.configuration.auditNotificationTargetConfigurations, ...(update.auditNotificationTargetConfigurations ?? {}) },
      auditCheckConfigurations: { ...this.configuration.auditCheckConfigurations, ...(update.auditCheckConfigurations ?? {}) },
    };
  }

  startOnDemandAuditTask(targetCheckNames: readonly string[]): string {
    if (!Array.isArray(targetCheckNames) || targetCheckNames.length === 0) {
      throw new AwsError('InvalidRequestException', 'targetCheckNames must name at least one check');
    }
    for (const check of targetCheckNames) {
      requireSupported(check);
      if (!this.configuration.auditCheckConfigurations[check]?.enabled) {
        throw new AwsError('InvalidRequestException', `check ${check} is not enabled for this account (UpdateAccountAuditConfiguration)`);
      }
    }
    const taskId = randomBytes(16).toString('hex');
    const task: AuditTask = {
      taskId,
      taskType: 'ON_DEMAND_AUDIT_TASK',
      taskStatus: 'IN_PROGRESS',
      taskStartTime: this.now(),
      auditDetails: Object.fromEntries([...new Set(targetCheckNames)].map((check) => [check, { checkRunStatus: 'IN_PROGRESS' as const }])),
    };
    this.tasks.set(taskId, task);
    const run = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.run(task));
    this.running.set(taskId, run);
    void run.finally(() => this.running.delete(taskId));
    return taskId;
  }

  /** Resolves once the task has completed and its notification was sent (or failed to send). */
  async completion(taskId: string): Promise<AuditTask> {
    await this.running.get(taskId);
    return this.describeTask(taskId);
  }

  /** Resolves when no task is running (shutdown). */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running.values()]);
  }

  describeTask(taskId: string): AuditTask {
    const task = this.tasks.get(taskId);
    if (!task) throw new AwsError('ResourceNotFoundException', `audit task ${taskId} does not exist`, 404);
    return structuredClone(task);
  }

  listTasks(filter: { startTime: Date; endTime: Date; taskStatus?: string; taskType?: string }): AuditTask[] {
    return [...this.tasks.values()]
      .filter((t) => t.taskStartTime >= filter.startTime && t.taskStartTime <= filter.endTime)
      .filter((t) => !filter.taskStatus || t.taskStatus === filter.taskStatus)
      .filter((t) => !filter.taskType || t.taskType === filter.taskType)
      .sort((a, b) => b.taskStartTime.getTime() - a.taskStartTime.getTime())
      .map((t) => structuredClone(t));
  }

  listFindings(filter: { taskId?: string; checkName?: string; deviceCertificateId?: string; caCertificateId?: string; startTime?: Date; endTime?: Date }): AuditFinding[] {
    if (filter.taskId && (filter.startTime || filter.endTime)) {
      throw new AwsError('InvalidRequestException', 'specify either taskId or startTime and endTime, not both');
    }
    if (!filter.taskId && !(filter.startTime && filter.endTime)) {
      throw new AwsError('InvalidRequestException', 'specify taskId, or both startTime and endTime');
    }
    if (filter.taskId && !this.tasks.has(filter.taskId)) {
      throw new AwsError('ResourceNotFoundException', `audit task ${filter.taskId} does not exist`, 404);
    }
    return this.findings
      .filter((f) => !filter.taskId || f.taskId === filter.taskId)
      .filter((f) => !filter.startTime || f.findingTime >= filter.startTime)
      .filter((f) => !filter.endTime || f.findingTime <= filter.endTime)
      .filter((f) => !filter.checkName || f.checkName === filter.checkName)
      .filter((f) => !filter.deviceCertificateId || ('deviceCertificateId' in f.nonCompliantResource.resourceIdentifier && f.nonCompliantResource.resourceIdentifier.deviceCertificateId === filter.deviceCertificateId))
      .filter((f) => !filter.caCertificateId || ('caCertificateId' in f.nonCompliantResource.resourceIdentifier && f.nonCompliantResource.resourceIdentifier.caCertificateId === filter.caCertificateId))
      .map((f) => structuredClone(f));
  }

  private async run(task: AuditTask): Promise<void> {
    const findingTime = this.now();
    // Device Defender audits ACTIVE and PENDING_TRANSFER device certificates only.
    const certificates = this.options.registry
      .listCertificates(true)
      .filter((c) => c.status === CertificateStatus.Active || c.status === CertificateStatus.PendingTransfer);
    // The CA check looks at registered CA certificates that are ACTIVE (AWS: or PENDING_TRANSFER, which local CAs never are).
    const caCertificates = this.options.registry.listCaCertificates(true).filter((c) => c.status === CaCertificateStatus.Active);
    for (const checkName of Object.keys(task.auditDetails) as SupportedCheck[]) {
      try {
        const resources = checkName === CaAuditCheck.Expiring ? caCertificates.length : certificates.length;
        const found = (checkName === CaAuditCheck.Expiring ? this.evaluateCas(caCertificates, findingTime) : this.evaluate(checkName, certificates, findingTime)).map((partial) => ({
          ...partial,
          findingId: randomUUID(),
          taskId: task.taskId,
          checkName,
          taskStartTime: task.taskStartTime,
          findingTime,
          isSuppressed: false,
        }));
        this.findings.push(...found);
        task.auditDetails[checkName] = {
          checkRunStatus: found.length > 0 ? 'COMPLETED_NON_COMPLIANT' : 'COMPLETED_COMPLIANT',
          checkCompliant: found.length === 0,
          totalResourcesCount: resources,
          nonCompliantResourcesCount: found.length,
          suppressedNonCompliantResourcesCount: 0,
        };
      } catch (error) {
        task.auditDetails[checkName] = { checkRunStatus: 'FAILED', errorCode: 'INTERNAL_ERROR', message: (error as Error).message };
      }
    }
    task.taskStatus = 'COMPLETED';
    await this.notify(task);
  }

  private evaluate(
    checkName: AuditCheck,
    certificates: readonly CertificateRecord[],
    at: Date,
  ): Pick<AuditFinding, 'severity' | 'nonCompliantResource' | 'reasonForNonCompliance' | 'reasonForNonComplianceCode'>[] {
    const config = this.configuration.auditCheckConfigurations[checkName]?.configuration ?? {};
    const resource = (c: CertificateRecord, additionalInfo: Record<string, string>) => ({
      resourceType: 'DEVICE_CERTIFICATE' as const,
      resourceIdentifier: { deviceCertificateId: c.certificateId, deviceCertificateArn: c.certificateArn },
      additionalInfo,
    });
    switch (checkName) {
      case AuditCheck.Expiring: {
        const thresholdDays = Number(config[CERT_EXPIRATION_THRESHOLD_IN_DAYS] ?? DEFAULT_EXPIRATION_DAYS);
        return certificates.flatMap((c) => {
          const notAfter = new Date(c.notAfter);
          const expired = notAfter.getTime() <= at.getTime();
          if (!expired && notAfter.getTime() - at.getTime() > thresholdDays * DAY_MS) return [];
          return [{
            severity: 'MEDIUM' as const,
            nonCompliantResource: resource(c, { EXPIRATION_TIME: notAfter.toISOString() }),
            reasonForNonCompliance: expired ? 'Certificate is expired' : 'Certificate is expiring',
            reasonForNonComplianceCode: expired ? 'CERTIFICATE_EXPIRED' : 'CERTIFICATE_EXPIRING',
          }];
        });
      }
      case AuditCheck.Age: {
        const thresholdDays = Number(config[CERT_AGE_THRESHOLD_IN_DAYS] ?? DEFAULT_AGE_DAYS);
        return certificates.flatMap((c) => {
          const ageDays = Math.floor((at.getTime() - new Date(c.creationDate).getTime()) / DAY_MS);
          if (ageDays < thresholdDays) return [];
          return [{
            severity: 'LOW' as const,
            nonCompliantResource: resource(c, { CERTIFICATE_AGE_IN_DAYS: String(ageDays) }),
            reasonForNonCompliance: `Certificate has been active for ${ageDays} days, past the threshold of ${thresholdDays} days`,
            reasonForNonComplianceCode: 'CERTIFICATE_PAST_AGE_THRESHOLD',
          }];
        });
      }
    }
  }

  /** CA_CERTIFICATE_EXPIRING_CHECK: a registered CA certificate expiring within 30 days, or expired. */
  private evaluateCas(
    caCertificates: readonly CaCertificateRecord[],
    at: Date,
  ): Pick<AuditFinding, 'severity' | 'nonCompliantResource' | 'reasonForNonCompliance' | 'reasonForNonComplianceCode'>[] {
    return caCertificates.flatMap((c) => {
      const notAfter = new Date(c.notAfter);
      const expired = notAfter.getTime() <= at.getTime();
      if (!expired && notAfter.getTime() - at.getTime() > CA_EXPIRATION_DAYS * DAY_MS) return [];
      return [{
        severity: 'MEDIUM' as const,
        nonCompliantResource: {
          resourceType: 'CA_CERTIFICATE' as const,
          resourceIdentifier: { caCertificateId: c.certificateId },
          additionalInfo: { EXPIRATION_TIME: notAfter.toISOString() },
        },
        reasonForNonCompliance: expired ? 'CA certificate is expired' : 'CA certificate is expiring',
        reasonForNonComplianceCode: expired ? CaExpiryReason.Past : CaExpiryReason.Approaching,
      }];
    });
  }

  private async notify(task: AuditTask): Promise<void> {
    const target = this.configuration.auditNotificationTargetConfigurations.SNS;
    if (!target?.enabled || !target.targetArn) return;
    const details = Object.entries(task.auditDetails);
    const count = (status: CheckRunStatus) => details.filter(([, d]) => d.checkRunStatus === status).length;
    const notification: AuditNotification = {
      accountId: this.options.registry.account,
      taskId: task.taskId,
      taskStatus: task.taskStatus,
      taskType: task.taskType,
      failedChecksCount: count('FAILED'),
      canceledChecksCount: 0,
      nonCompliantChecksCount: count('COMPLETED_NON_COMPLIANT'),
      compliantChecksCount: count('COMPLETED_COMPLIANT'),
      totalChecksCount: details.length,
      taskStartTime: task.taskStartTime.getTime(),
      auditDetails: details.map(([checkName, d]) => ({
        checkName,
        checkRunStatus: d.checkRunStatus,
        nonCompliantResourcesCount: d.nonCompliantResourcesCount ?? 0,
        totalResourcesCount: d.totalResourcesCount ?? 0,
        ...(d.suppressedNonCompliantResourcesCount !== undefined ? { suppressedNonCompliantResourceCount: d.suppressedNonCompliantResourcesCount } : {}),
        ...(d.errorCode ? { errorCode: d.errorCode, message: d.message } : {}),
      })),
    };
    try {
      await this.options.sns.publish({ topicArn: target.targetArn, message: JSON.stringify(notification) });
    } catch (error) {
      this.options.onNotificationError?.(error, task.taskId);
    }
  }
}

function requireSupported(check: string): void {
  if (!SUPPORTED_CHECKS.includes(check)) {
    throw new AwsError('InvalidRequestException', `audit check ${check} is not supported by the local Device Defender (supported: ${SUPPORTED_CHECKS.join(', ')})`);
  }
}
