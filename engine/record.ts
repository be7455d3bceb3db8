/**
 * Records are plain objects. Engine metadata (where a record came from) rides on a symbol key so that
 * sinks serialising records (JSON.stringify, COPY) never see it, while object spread keeps it.
 * A stage builds a new object to change a record (`{ ...record, field }`), because with fan-out the same object
 * reaches several stages, unless its definition declares `changesRecords`: the runtime then gives it objects
 * nobody else sees (copies where they are shared), which it changes in place (engine/operator.ts).
 */
export type EtlRecord = { [field: string]: unknown; [ORIGIN]?: Origin };

export const ORIGIN: unique symbol = Symbol.for('etl.origin');

/** Where a record entered the pipeline; kept for dead letters and re-drives. */
export interface Origin {
  /** Id of the source stage. */
  readonly source: string;
  /** File path (file sources) or another locator (e.g. `stdin`, `generator`). */
  readonly file?: string;
  /**
   * What `offset` and `line` count in when `file` may change while it is read: the file source's device, inode
   * and creation time, the same under a rotation's rename and when a rerun reads the renamed file again.
   */
  readonly input?: string;
  /** Byte offset of the line's first byte in the (decompressed) stream. */
  readonly offset?: number;
  /** 1-based line number. */
  readonly line?: number;
  /** A queue source's per-stream sequence number of the message (JetStream's stream sequence): unique per stream. */
  readonly sequence?: number;
  /** The subject (topic) a queue source's message was published to. */
  readonly subject?: string;
  /** How many times the broker has delivered the message; above 1, a redelivery (at-least-once sources). */
  readonly deliveries?: number;
}

/** The record shape sources of raw text emit (`kind: raw`). */
export interface RawLine extends EtlRecord {
  message: string;
}

/** Record kinds flowing on ports; the graph pass checks them. */
export const RECORD_KINDS = ['raw', 'access', 'error_log', 'dead_letter', 'any'] as const;
export type RecordKind = (typeof RECORD_KINDS)[number];

/** What a dead-letter record looks like (`kind: dead_letter`). */
export interface DeadLetter extends EtlRecord {
  stage: string;
  reason: string;
  /** ISO-8601 time at which the record was rejected. */
  time: string;
  origin: {
    source?: string;
    file?: string;
    offset?: number;
    line?: number;
    sequence?: number;
    subject?: string;
    deliveries?: number;
  } | null;
  /** The original text when the record was a raw line, else the record serialised as JSON. */
  raw: string;
  /** A raw line's bytes, base64, when they are not valid UTF-8 (`raw` is then their U+FFFD decoding). */
  raw_base64?: string;
}

/** The fields a raw line may carry (engine/record-schema.ts RAW_LINE_SCHEMA): `message` and what sources say of it. */
const RAW_LINE_FIELDS = new Set([
  'message',
  'message_base64',
  'truncated',
  'line_bytes',
  'line_bytes_at_least',
  'max_line_bytes',
]);

/** Whether `record` is a line as a source emits it, and no more: its dead letter keeps the text, not JSON. */
function isRawLine(record: EtlRecord): boolean {
  if (typeof record.message !== 'string') return false;
  for (const key in record) if (!RAW_LINE_FIELDS.has(key)) return false;
  return true;
}

/**
 * Builds a dead letter for `record`, rejected by `stage` for `reason`. A raw line (`message`, with
 * `message_base64` when it is not UTF-8, and what the source says of a line it cut) is kept as its text, and its
 * bytes in `raw_base64`.
 */
export function deadLetter(record: EtlRecord, stage: string, reason: string, now = Date.now()): DeadLetter {
  const origin = record[ORIGIN];
  const bytes = record.message_base64;
  const line = isRawLine(record);
  const raw = line
    ? (record.message as string)
    : typeof record.raw === 'string' && typeof record.reason === 'string'
      ? record.raw
      : safeJson(record);
  const dl: DeadLetter = {
    stage,
    reason,
    time: new Date(now).toISOString(),
    origin: origin ? originFields(origin) : null,
    raw,
  };
  if (line && typeof bytes === 'string') dl.raw_base64 = bytes;
  else if (!line && typeof record.raw_base64 === 'string' && typeof record.reason === 'string')
    dl.raw_base64 = record.raw_base64;
  if (origin) dl[ORIGIN] = origin;
  return dl;
}

/** The origin as a dead letter keeps it: file positions always, a queue message's fields when it has them. */
function originFields(origin: Origin): NonNullable<DeadLetter['origin']> {
  const out: NonNullable<DeadLetter['origin']> = {
    source: origin.source,
    file: origin.file,
    offset: origin.offset,
    line: origin.line,
  };
  if (origin.sequence !== undefined) out.sequence = origin.sequence;
  if (origin.subject !== undefined) out.subject = origin.subject;
  if (origin.deliveries !== undefined) out.deliveries = origin.deliveries;
  return out;
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  } catch {
    return String(value);
  }
}

/**
 * The event time a record field holds, epoch milliseconds: an ISO-8601 text, a number of milliseconds or a Date;
 * NaN for anything else, and for numbers no Date can hold (beyond ±8.64e15 ms: an epoch in nanoseconds, say),
 * which would otherwise push a watermark years ahead. The one reading shared by the runtime's watermark and the
 * operators that keep time.
 */
export function eventTimeOf(value: unknown): number {
  if (typeof value === 'string') return Date.parse(value);
  if (typeof value === 'number') return Math.abs(value) <= 8.64e15 ? value : Number.NaN;
  if (value instanceof Date) return value.getTime();
  return Number.NaN;
}
