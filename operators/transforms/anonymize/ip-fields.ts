import { personalDataFields, type RecordSchema } from '../../../engine/record-schema.ts';
import { type AnonymizeOptions, DEFAULT_IP_FIELDS } from './schema.ts';

/**
 * The address fields: `ip.fields`, or by default client_ip and forwarded_for plus every field the records' schema
 * annotates as holding an address (threat_intel's `threat_range`), whatever its name.
 */
export function ipFieldsFor(options: AnonymizeOptions, input: RecordSchema | undefined): readonly string[] {
  if (options.ip.fields !== undefined) return options.ip.fields;
  return [...new Set<string>([...DEFAULT_IP_FIELDS, ...personalDataFields(input, 'ip')])];
}
