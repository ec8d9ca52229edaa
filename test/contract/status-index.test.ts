import type { RotationRecord } from '../../domain/records';
import { rotationTableInput } from '../../local/dynamodb/rotation-table';
import { loadWiring } from '../../wiring/index';

/**
 * The by-status index projects only what the operator CLI reads, never the task token
 * (issue 9, scenario 9). The list in wiring.json is held to domain/records.ts here: the type
 * below names every field of a current record, so a field added to RotationRecord fails the
 * type check until someone decides whether the index carries it.
 */
type KeyAttributes = 'pk' | 'sk' | 'status' | 'updatedAt';
type Secret = 'taskToken';
/** Read by the functions only (Retire reads Issue's findings on the record itself, never through the index). */
type FunctionsOnly = 'issuedFrom';
const PROJECTED: Record<Exclude<keyof RotationRecord, KeyAttributes | Secret | FunctionsOnly>, true> = {
  thingName: true,
  step: true,
  rotationId: true,
  executionArn: true,
  oldCertificateId: true,
  newCertificateId: true,
  trigger: true,
  auditTaskId: true,
  checkName: true,
  startedAt: true,
  finishedAt: true,
  attempts: true,
  csrRequests: true,
  waitFor: true,
  reason: true,
  cause: true,
  ignoredCount: true,
  lastIgnored: true,
  ackedCertificateId: true,
  leftoverCertificateId: true,
  issueIntent: true,
  newCertificateNotAfter: true,
};

describe('the by-status index projection', () => {
  const { table } = loadWiring();

  it('names every non-key field of a current record but the task token', () => {
    expect([...table.statusIndex.nonKeyAttributes].sort()).toEqual(Object.keys(PROJECTED).sort());
    expect(table.statusIndex.nonKeyAttributes).not.toContain('taskToken');
  });

  it('is what the local runtime creates (INCLUDE, the same list)', () => {
    const [index] = rotationTableInput('rotor-rotations', table).GlobalSecondaryIndexes ?? [];
    expect(index.Projection).toEqual({ ProjectionType: 'INCLUDE', NonKeyAttributes: table.statusIndex.nonKeyAttributes });
  });
});
