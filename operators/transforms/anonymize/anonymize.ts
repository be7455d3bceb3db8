/**
 * The anonymize transform: each record is rebuilt with its IP fields truncated, pseudonymized or dropped, its
 * user fields dropped or pseudonymized, and its text fields scrubbed; dead letters it reads leave on its own
 * `dead_letter` port with `raw` and `reason` scrubbed (or `raw` emptied). Synchronous, and it does not throw on
 * any record: a transform that threw would have the engine dead-letter the batch as it came, personal data and
 * all (engine/runtime/run.ts, `on_error: dead_letter`).
 */
import type { OperatorContext, PortRecords, StageReport, Transform } from '../../../engine/operator.ts';
import { errorMessage } from '../../../engine/errors.ts';
import { type DeadLetter, deadLetter, type EtlRecord, ORIGIN } from '../../../engine/record.ts';
import { type AddressRule, anonymizeAddress, Pseudonymizer } from './addresses.ts';
import { ipFieldsFor } from './ip-fields.ts';
import { type AnonymizeOptions, DEFAULT_IP_FIELDS, DEFAULT_TEXT_FIELDS, DEFAULT_USER_FIELDS } from './schema.ts';
import { scrubText, type TextRule } from './text.ts';

const CLF_USER = /^(\S+ \S+ )([^\s[]+)( \[)/;
const DEAD_LETTER_KEYS = ['stage', 'reason', 'time', 'origin', 'raw'];

/**
 * Whether a record is a dead letter (engine/record.ts `deadLetter`): exactly its fields (with `raw_base64` or
 * without), `raw` a string.
 */
export function isDeadLetter(record: EtlRecord): record is DeadLetter {
  if (typeof record.raw !== 'string' || typeof record.reason !== 'string' || typeof record.stage !== 'string') {
    return false;
  }
  const keys = Object.keys(record);
  const expected = DEAD_LETTER_KEYS.length + (typeof record.raw_base64 === 'string' ? 1 : 0);
  return keys.length === expected && DEAD_LETTER_KEYS.every((k) => keys.includes(k));
}

/** What one record goes through, built once from the options. */
export class Anonymizer {
  private readonly ipFields: readonly string[];
  private readonly userFields: readonly string[];
  private readonly textFields: readonly string[];
  private readonly address: AddressRule;
  private readonly text: TextRule;
  private readonly userMode: AnonymizeOptions['user']['mode'];
  private readonly pseudonymizer: Pseudonymizer | undefined;
  private readonly dropRaw: boolean;
  private readonly userMemo = new Map<string, string>();
  /** What was changed, for the run's report and audit log. */
  readonly counts = { records: 0, addresses: 0, users: 0, texts: 0, dead_letters: 0 };

  /** `ipFields`: the address fields (index.ts `ipFieldsFor`); by default those `ip.fields` or its defaults name. */
  constructor(options: AnonymizeOptions, ipFields: readonly string[] = options.ip.fields ?? DEFAULT_IP_FIELDS) {
    this.pseudonymizer = options.key === undefined ? undefined : new Pseudonymizer(options.key, options.key_id ?? 'k');
    this.ipFields = ipFields;
    this.userFields = options.user.fields ?? DEFAULT_USER_FIELDS;
    this.textFields = options.scrub.fields ?? DEFAULT_TEXT_FIELDS;
    this.userMode = options.user.mode;
    this.address = {
      mode: options.ip.mode,
      ipv4Prefix: options.ip.ipv4_prefix,
      ipv6Prefix: options.ip.ipv6_prefix,
      memo: new Map(),
      ...(this.pseudonymizer === undefined ? {} : { pseudonymizer: this.pseudonymizer }),
    };
    const names = new Set(options.scrub.params.map((p) => p.toLowerCase()));
    const patterns = options.scrub.param_patterns;
    const pattern = patterns.length === 0 ? undefined : new RegExp(patterns.map((p) => `(?:${p})`).join('|'), 'i');
    // The same few parameter names come back on every line: each is judged once (a bounded memo).
    const judged = new Map<string, boolean>();
    this.text = {
      sensitiveParam: (name) => {
        let sensitive = judged.get(name);
        if (sensitive === undefined) {
          sensitive = names.has(name.toLowerCase()) || pattern?.test(name) === true;
          if (judged.size >= 10_000) judged.clear();
          judged.set(name, sensitive);
        }
        return sensitive;
      },
      emails: options.scrub.emails,
      phones: options.scrub.phones,
      cards: options.scrub.cards,
      addresses: options.scrub.ips ? this.address : undefined,
    };
    this.dropRaw = options.dead_letters === 'drop_raw';
  }

  record(record: EtlRecord): EtlRecord {
    const out: EtlRecord = { ...record };
    const counts = this.counts;
    counts.records++;
    for (const field of this.ipFields) {
      if (!(field in out)) continue;
      const value = out[field];
      out[field] = this.addressValue(value);
      if (out[field] !== value && value !== null) counts.addresses++;
    }
    for (const field of this.userFields) {
      if (!(field in out)) continue;
      const value = out[field];
      out[field] = this.userValue(value);
      if (out[field] !== value) counts.users++;
    }
    for (const field of this.textFields) {
      if (!(field in out)) continue;
      const value = out[field];
      out[field] = this.textValue(value);
      // Objects are rebuilt whatever they hold: only a changed string counts as scrubbed.
      if (typeof value === 'string' && out[field] !== value) counts.texts++;
    }
    // A line's original bytes when they are not UTF-8 (engine/record.ts) cannot be scrubbed as text is: they are
    // left out, null where the schema has the field (parse's records), absent where it is optional (raw lines).
    if (typeof out.raw_base64 === 'string') out.raw_base64 = null;
    delete out.message_base64;
    return out;
  }

  deadLetter(letter: DeadLetter): DeadLetter {
    this.counts.dead_letters++;
    const out: DeadLetter = {
      ...letter,
      reason: scrubText(letter.reason, this.text),
      raw: this.dropRaw ? '' : scrubText(this.recordAsJson(letter.raw) ?? this.clfUser(letter.raw), this.text),
    };
    delete out.raw_base64; // the original bytes, as for records
    return out;
  }

  /**
   * A dead letter of a record (a transform or sink refused it) holds it as JSON: the record rules apply to it as
   * to any record, so its user field goes too. Undefined when `raw` is not a JSON object.
   */
  private recordAsJson(raw: string): string | undefined {
    if (!raw.startsWith('{')) return undefined;
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      return undefined;
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
    return JSON.stringify(this.record(parsed as EtlRecord));
  }

  /**
   * The user of a line shaped like Common Log Format (`host ident user [time] …`), the one place a raw line
   * tells a user name apart from other words; elsewhere in a raw line a name cannot be recognised.
   */
  private clfUser(raw: string): string {
    if (this.userMode === 'keep') return raw;
    return raw.replace(CLF_USER, (match, head: string, user: string, tail: string) => {
      if (user === '-') return match;
      const replaced = this.userMode === 'drop' ? '-' : (this.pseudonymizer as Pseudonymizer).of('user', user);
      return `${head}${replaced}${tail}`;
    });
  }

  /** Any text, scrubbed by the text rules: what a record that cannot be handled is reduced to. */
  scrub(text: string): string {
    return scrubText(text, this.text);
  }

  private addressValue(value: unknown): unknown {
    if (typeof value === 'string') return anonymizeAddress(value, this.address);
    if (Array.isArray(value)) {
      if (this.address.mode === 'drop') return null;
      const kept: string[] = [];
      for (const item of value) {
        const anonymized = typeof item === 'string' ? anonymizeAddress(item, this.address) : null;
        if (anonymized !== null) kept.push(anonymized);
      }
      return kept;
    }
    // null stays null; anything else in an address field (a number, an object) cannot be vouched for.
    return this.address.mode === 'keep' ? value : null;
  }

  private userValue(value: unknown): unknown {
    if (this.userMode === 'keep' || value === null || value === undefined) return value;
    if (this.userMode === 'drop') return null;
    if (typeof value !== 'string') return null;
    let pseudonym = this.userMemo.get(value);
    if (pseudonym === undefined) {
      pseudonym = (this.pseudonymizer as Pseudonymizer).of('user', value);
      if (this.userMemo.size >= 50_000) this.userMemo.clear();
      this.userMemo.set(value, pseudonym);
    }
    return pseudonym;
  }

  private textValue(value: unknown, depth = 0): unknown {
    if (typeof value === 'string') return scrubText(value, this.text);
    if (value === null || typeof value !== 'object' || depth > 8) return value;
    if (Array.isArray(value)) return value.map((v) => this.textValue(v, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) {
      // `extra.cookie_sessionid`, `extra.http_authorization`: the key says the value is a secret.
      out[key] = v !== null && this.text.sensitiveParam(bareName(key)) ? '[redacted]' : this.textValue(v, depth + 1);
    }
    return out;
  }
}

/** `cookie_session`, `arg_token`, `http_authorization`: the name without nginx's variable prefix. */
function bareName(key: string): string {
  return key.replace(/^(?:cookie|arg|http|sent_http|env|note)_/, '');
}

export class AnonymizeTransform implements Transform {
  private readonly anonymizer: Anonymizer;
  private readonly ctx: OperatorContext;

  constructor(options: AnonymizeOptions, ctx: OperatorContext) {
    this.anonymizer = new Anonymizer(options, ipFieldsFor(options, ctx.inputSchema));
    this.ctx = ctx;
  }

  process(records: EtlRecord[]): PortRecords {
    const out: EtlRecord[] = [];
    const letters: EtlRecord[] = [];
    for (const record of records) {
      try {
        if (isDeadLetter(record)) letters.push(this.anonymizer.deadLetter(record));
        else out.push(this.anonymizer.record(record));
      } catch (error) {
        // Not expected (every rule is total over strings); the record is not passed on as it came, only its origin.
        const bare: EtlRecord = {};
        const origin = record[ORIGIN];
        if (origin) bare[ORIGIN] = origin;
        letters.push(deadLetter(bare, this.ctx.id, this.anonymizer.scrub(`anonymize failed: ${errorMessage(error)}`)));
      }
    }
    const ports: PortRecords = { default: out };
    if (letters.length > 0) ports.dead_letter = letters;
    return ports;
  }

  summarize(): StageReport {
    const c = this.anonymizer.counts;
    const n = (value: number) => value.toLocaleString('en-US');
    return {
      lines: [
        `${n(c.records)} records: ${n(c.addresses)} addresses anonymized, ${n(c.users)} user names removed or ` +
          `pseudonymized, ${n(c.texts)} texts scrubbed; ${n(c.dead_letters)} dead letters scrubbed`,
      ],
      counts: {
        records: c.records,
        addresses_anonymized: c.addresses,
        users_anonymized: c.users,
        texts_scrubbed: c.texts,
        dead_letters_scrubbed: c.dead_letters,
      },
    };
  }
}
