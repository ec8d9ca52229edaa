/** SNS subjects: at most 100 printable ASCII characters, no line breaks. */
export const MAX_SUBJECT_CHARS = 100;

/** The subject of a failed rotation's one escalation (Record failure's, and an abandoned claim's). */
export function escalationSubject(thingName: string, reason: string): string {
  const subject = `Rotor: certificate rotation of ${thingName} failed (${reason})`.replace(/[^\x20-\x7e]/g, '?');
  return subject.length <= MAX_SUBJECT_CHARS ? subject : `${subject.slice(0, MAX_SUBJECT_CHARS - 3)}...`;
}
