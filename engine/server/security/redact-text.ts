import { redact } from '../../redact.ts';
import { KEY_PATTERN } from './keys.ts';

/** Masks API keys (`etl_***`), the given secrets and URL passwords in `text`. */
export function redactText(text: string, secrets: readonly string[] = []): string {
  return redact(text, secrets).replace(KEY_PATTERN, 'etl_***');
}
