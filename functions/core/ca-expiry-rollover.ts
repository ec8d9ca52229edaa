import { ListAuditFindingsCommand, type IoTClient } from '@aws-sdk/client-iot';
import { StartExecutionCommand, type SFNClient } from '@aws-sdk/client-sfn';
import * as z from 'zod/mini';
import { auditRollover } from '../../domain/ca-rollover.js';
import { CaAuditCheck } from '../../domain/rotation.js';
import { isNamed } from '../aws/errors.js';
import type { Telemetry } from './telemetry.js';

/**
 * The CA branch of start-rotations (issue 11 part 2): a CA_CERTIFICATE_EXPIRING_CHECK finding
 * in an audit notification starts the CA rollover of that CA to the configured successor
 * (`next_private_ca_arn`), or, with none configured, the same execution without NEW, whose
 * Verify new CA sends the one escalation "no successor configured". Execution names are
 * deterministic (CA, successor, audit task): a redelivered notification starts nothing twice.
 */
export interface CaExpiryDeps {
  iot: IoTClient;
  sfn: SFNClient;
  telemetry: Telemetry;
  /** The ca-rollover state machine; undefined: the deployment has none, CA findings are ignored. */
  caRolloverStateMachineArn?: string;
  /** The successor Private CA's ARN (setting nextPrivateCaArn); empty or undefined: none. */
  nextPrivateCaArn?: string;
}

export interface CaRolloverStarts {
  /** Rollover executions started (or found running: the same name and input). */
  started: number;
  /** Of them, how many have no successor to move to (they escalate). */
  withoutSuccessor: number;
  /** Already ended under the same name: this notification was delivered before. */
  alreadyStarted: number;
  /** Findings suppressed in Device Defender: the operator chose not to act on them. */
  suppressed: number;
}

const AuditDetailSchema = z.object({ checkName: z.string(), checkRunStatus: z.string() });
const NotificationSchema = z.object({ taskId: z.string().check(z.regex(/^[a-zA-Z0-9-]{1,40}$/)), taskStatus: z.string(), auditDetails: z.array(z.unknown()) });
const SnsEventSchema = z.object({ Records: z.array(z.object({ Sns: z.object({ Message: z.string() }) })) });

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The audit tasks of an SNS event whose CA check is non-compliant; none for anything else (start-rotations reports bad input). */
export function caExpiryAudits(event: unknown): string[] {
  const records = SnsEventSchema.safeParse(event).data?.Records ?? [];
  return records.flatMap((record) => {
    const notification = NotificationSchema.safeParse(parseJson(record.Sns.Message)).data;
    if (!notification || notification.taskStatus !== 'COMPLETED') return [];
    const flagged = notification.auditDetails.some((detail) => {
      const parsed = AuditDetailSchema.safeParse(detail).data;
      return parsed?.checkName === CaAuditCheck.Expiring && parsed.checkRunStatus === 'COMPLETED_NON_COMPLIANT';
    });
    return flagged ? [notification.taskId] : [];
  });
}

/** Starts one rollover per CA the audits flagged; undefined when the event flags no CA (or the deployment has no rollover). */
export async function startCaRollovers(event: unknown, deps: CaExpiryDeps): Promise<CaRolloverStarts | undefined> {
  const stateMachineArn = deps.caRolloverStateMachineArn;
  const taskIds = caExpiryAudits(event);
  if (!stateMachineArn || taskIds.length === 0) return undefined;
  const starts: CaRolloverStarts = { started: 0, withoutSuccessor: 0, alreadyStarted: 0, suppressed: 0 };
  for (const taskId of taskIds) {
    let nextToken: string | undefined;
    do {
      const page = await deps.iot.send(new ListAuditFindingsCommand({ taskId, checkName: CaAuditCheck.Expiring, nextToken }));
      for (const finding of page.findings ?? []) {
        const caCertificateId = finding.nonCompliantResource?.resourceIdentifier?.caCertificateId;
        if (!caCertificateId) continue;
        if (finding.isSuppressed) {
          starts.suppressed++;
          continue;
        }
        const { name, input } = auditRollover(caCertificateId, taskId, deps.nextPrivateCaArn);
        try {
          await deps.sfn.send(new StartExecutionCommand({ stateMachineArn, name, input: JSON.stringify(input) }));
          starts.started++;
          if (!input.newCa) starts.withoutSuccessor++;
          deps.telemetry.log.info('CA rollover started for an expiring CA', { auditTaskId: taskId, caCertificateId, successor: input.newCa ?? null, rolloverId: name });
        } catch (error) {
          if (!isNamed(error, 'ExecutionAlreadyExists')) throw error;
          starts.alreadyStarted++;
        }
      }
      nextToken = page.nextToken;
    } while (nextToken);
  }
  return starts;
}
