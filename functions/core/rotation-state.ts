import { InvalidInput, Trigger } from '../../domain/index.js';
import type { StateError } from './failure.js';
import { certificateIdField, objectInput, optionalStringField, thingNameField, type Fields } from './input.js';

/**
 * The execution state ('$') that 'Roll back' and 'Record failure' receive whole: the
 * RotationInput plus what each state added under its ResultPath.
 */
export interface RotationState {
  thingName: string;
  /** The certificate being replaced (RotationInput.certificateId). */
  certificateId: string;
  trigger?: Trigger;
  auditTaskId?: string;
  checkName?: string;
  issued?: { certificateId?: string; certificateArn?: string };
  rollback?: { newCertificateId?: string | null; deleted?: boolean; aborted?: boolean; oldCertificateStatus?: string };
  error?: StateError;
  rollbackError?: StateError;
}

function stateError(value: unknown): StateError | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const fields = value as Fields;
  return {
    Error: typeof fields.Error === 'string' ? fields.Error : undefined,
    Cause: typeof fields.Cause === 'string' ? fields.Cause : undefined,
  };
}

function optionalObject(value: unknown): Fields | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Fields) : undefined;
}

const TRIGGERS: readonly string[] = Object.values(Trigger);

/** Reads the fields Rotor relies on; anything else in the state is passed over. */
export function parseRotationState(value: unknown): RotationState {
  const state = objectInput(value, 'rotation');
  const trigger = optionalStringField(state, 'trigger', 16);
  if (trigger !== undefined && !TRIGGERS.includes(trigger)) throw new InvalidInput(`rotation.trigger must be one of ${TRIGGERS.join(', ')}`);
  const issued = optionalObject(state.issued);
  const rollback = optionalObject(state.rollback);
  return {
    thingName: thingNameField(state),
    certificateId: certificateIdField(state, 'certificateId'),
    trigger: trigger as Trigger | undefined,
    auditTaskId: optionalStringField(state, 'auditTaskId', 128),
    checkName: optionalStringField(state, 'checkName', 128),
    issued: issued ? { certificateId: typeof issued.certificateId === 'string' ? issued.certificateId : undefined } : undefined,
    rollback: rollback
      ? {
          newCertificateId: typeof rollback.newCertificateId === 'string' ? rollback.newCertificateId : null,
          deleted: rollback.deleted === true,
          aborted: rollback.aborted === true,
          ...(typeof rollback.oldCertificateStatus === 'string' ? { oldCertificateStatus: rollback.oldCertificateStatus } : {}),
        }
      : undefined,
    error: stateError(state.error),
    rollbackError: stateError(state.rollbackError),
  };
}
