/**
 * Text made from record fields: Redis keys (`web:{vhost}:{path}`), alert messages. `{name}` is the value of field
 * `name` (numbers and booleans as text, other values as JSON), `{{` and `}}` are literal braces.
 */
import type { EtlRecord } from '../../engine/record.ts';

export interface Template {
  readonly fields: readonly string[];
  /** The key for `record`, or the name of the first field it lacks (missing or null). */
  render(record: EtlRecord): { key: string } | { missing: string };
  /** The text for `record`, with `absent` where a field is missing or null. */
  fill(record: EtlRecord, absent: string): string;
}

export function parseTemplate(text: string, escaping: 'none' | 'percent' = 'none'): Template {
  const literals: string[] = [];
  const fields: string[] = [];
  let literal = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if ((c === '{' || c === '}') && text[i + 1] === c) {
      literal += c;
      i++;
    } else if (c === '{') {
      const end = text.indexOf('}', i + 1);
      const name = end < 0 ? '' : text.slice(i + 1, end);
      if (end < 0 || name === '' || name.includes('{')) {
        throw new Error(`\`{\` at ${i + 1} opens no \`{field}\`; write \`{{\` for a literal brace`);
      }
      literals.push(literal);
      fields.push(name);
      literal = '';
      i = end;
    } else if (c === '}') {
      throw new Error(`\`}\` at ${i + 1} closes nothing; write \`}}\` for a literal brace`);
    } else {
      literal += c;
    }
  }
  literals.push(literal);
  const encode = escaping === 'percent' ? encodeURIComponent : (s: string) => s;
  return {
    fields,
    render(record) {
      let key = literals[0] as string;
      for (let i = 0; i < fields.length; i++) {
        const name = fields[i] as string;
        const value = record[name];
        if (value === undefined || value === null) return { missing: name };
        key += encode(valueText(value)) + (literals[i + 1] as string);
      }
      return { key };
    },
    fill(record, absent) {
      let text = literals[0] as string;
      for (let i = 0; i < fields.length; i++) {
        const value = record[fields[i] as string];
        text +=
          (value === undefined || value === null ? absent : encode(valueText(value))) + (literals[i + 1] as string);
      }
      return text;
    },
  };
}

/** A field's value as Redis text. */
export function valueText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (value instanceof Date) return value.toISOString();
  return JSON.stringify(value);
}
