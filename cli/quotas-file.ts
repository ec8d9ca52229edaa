import { readFileSync } from 'node:fs';
import { DEFAULT_QUOTA_SETTINGS, parseQuotasFile, QuotasFileError, type QuotaSettings } from '../domain/pacing/index.js';

/**
 * Reads a quotas file (docs/fleet-scale.md) for `rotor simulate` and `rotor plan`. A missing
 * file or a bad field is a QuotasFileError naming the file, never a silent default.
 */
export function readQuotasFile(file: string, base: QuotaSettings = DEFAULT_QUOTA_SETTINGS): QuotaSettings {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new QuotasFileError(`cannot read the quotas file ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  try {
    return parseQuotasFile(text, base);
  } catch (error) {
    if (error instanceof QuotasFileError) throw new QuotasFileError(`${file}: ${error.message}`);
    throw error;
  }
}
