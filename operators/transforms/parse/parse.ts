/**
 * The `parse` transform: raw lines in, access (or error-log) records out, unparseable lines to
 * `dead_letter` with the reason and their origin. Synchronous and allocation-light: one record per line.
 * With `format: auto`, error-log records leave on their own port, `error_log`.
 */
import type { Logger, OperatorContext, OperatorMetrics, PortRecords, Transform } from '../../../engine/operator.ts';
import { deadLetter, type EtlRecord, ORIGIN } from '../../../engine/record.ts';
import { AutoDetector, type Candidate, type Decision } from './detect.ts';
import {
  compileAccess,
  compileErrorLog,
  type FormatSpec,
  formatLabel,
  isErrorLogFormat,
  type CompileContext,
} from './formats/index.ts';
import { type LineParser, TemplateFormat } from './formats/template.ts';
import { TrustedProxies } from './forwarded.ts';
import type { ParseOptions } from './schema.ts';

/** The port error-log records leave on under `format: auto`. */
export const ERROR_LOG_PORT = 'error_log';

type Parser = LineParser<object>;

const MAX_TRACKED_FILES = 10_000;

export class ParseTransform implements Transform {
  private readonly id: string;
  private readonly maxLineBytes: number;
  private readonly logger: Logger;
  private readonly metrics: OperatorMetrics;
  /** Explicit format; undefined with `format: auto`. */
  private readonly parser: Parser | undefined;
  /** Explicit format's tolerant variant (bare `-` for quoted values, fields appended after the end). */
  private readonly tolerant: Parser | undefined;
  private readonly detector: AutoDetector | undefined;
  /** Whether a stage reads `error_log`: if not, error-log lines go to dead letters rather than nowhere. */
  private readonly errorLogsRead: boolean;
  private readonly candidates: readonly Candidate[];
  /** Files currently detected as each format, for the gauge. */
  private readonly filesByFormat = new Map<string, number>();
  private readonly fileFormats = new Map<string, string>();
  private reason = '';

  constructor(options: ParseOptions, ctx: OperatorContext) {
    this.id = ctx.id;
    this.maxLineBytes = options.max_line_bytes;
    this.logger = ctx.logger;
    this.metrics = ctx.metrics;
    this.errorLogsRead = ctx.readPorts.has(ERROR_LOG_PORT);
    const compile: CompileContext = {
      timezone: options.timezone,
      customVariables: options.custom_variables,
      trusted: new TrustedProxies(options.trusted_proxies),
    };
    const format = options.format as FormatSpec;
    if (format === 'auto') {
      this.candidates = autoCandidates(options.candidates as readonly FormatSpec[], compile);
      this.detector = new AutoDetector(this.candidates, options.sample_lines);
    } else {
      this.candidates = [];
      if (isErrorLogFormat(format)) this.parser = compileErrorLog(format, compile);
      else {
        const parser = compileAccess(format, compile);
        this.parser = parser;
        this.tolerant = parser instanceof TemplateFormat ? parser.tolerantVariant() : undefined;
      }
    }
  }

  process(records: EtlRecord[]): PortRecords {
    const out: EtlRecord[] = [];
    let errorLogs: EtlRecord[] | undefined;
    let rejected: EtlRecord[] | undefined;
    const detector = this.detector;
    for (let i = 0; i < records.length; i++) {
      const record = records[i] as EtlRecord;
      const parsed = this.parseRecord(record);
      if (parsed !== null) {
        parsed[ORIGIN] = record[ORIGIN];
        // A line that is not UTF-8 keeps its bytes (the record's text fields hold U+FFFD in their place).
        const bytes = record.message_base64;
        if (typeof bytes === 'string') parsed.raw_base64 = bytes;
        if (!detector?.errorLog) {
          out.push(parsed);
        } else if (this.errorLogsRead) {
          errorLogs ??= [];
          errorLogs.push(parsed);
        } else {
          this.reason = `an error-log line, and no stage reads ${this.id}.${ERROR_LOG_PORT}`;
          rejected ??= [];
          rejected.push(this.reject(record));
        }
      } else {
        rejected ??= [];
        rejected.push(this.reject(record));
      }
    }
    if (this.detector) this.report();
    const ports: PortRecords = { default: out };
    if (errorLogs) ports[ERROR_LOG_PORT] = errorLogs;
    if (rejected) ports.dead_letter = rejected;
    return ports;
  }

  private parseRecord(record: EtlRecord): EtlRecord | null {
    const message = record.message;
    if (typeof message !== 'string') {
      this.reason = 'the record has no text `message` to parse';
      return null;
    }
    let end = message.length;
    // Sources strip the newline; a CRLF file leaves the CR.
    while (end > 0 && (message.charCodeAt(end - 1) === 13 || message.charCodeAt(end - 1) === 10)) end--;
    if (end === 0) {
      this.reason = 'empty line';
      return null;
    }
    // Sizes are of the bytes as read: a line that is not UTF-8 is measured by its bytes, not by its
    // decoding, where each invalid byte became a 3-byte U+FFFD.
    const bytes = record.message_base64;
    if (
      typeof bytes === 'string'
        ? base64Bytes(bytes) > this.maxLineBytes
        : end > this.maxLineBytes || (end * 3 > this.maxLineBytes && Buffer.byteLength(message) > this.maxLineBytes)
    ) {
      const size = typeof bytes === 'string' ? base64Bytes(bytes) : Buffer.byteLength(message);
      this.reason = `line of ${size} bytes is longer than max_line_bytes (${this.maxLineBytes})`;
      if (record.truncated === true) this.reason += truncation(record);
      return null;
    }
    let parsed: object | null;
    if (this.detector) {
      const origin = record[ORIGIN];
      parsed = this.detector.parse(origin?.file ?? origin?.source ?? '', message, end);
      if (parsed === null) this.reason = this.detector.failure();
    } else {
      const parser = this.parser as Parser;
      parsed = parser.parse(message, end, false);
      if (parsed === null) {
        this.reason = parser.failure();
        parsed = this.tolerant?.parse(message, end, false) ?? parser.parse(message, end, true);
      }
    }
    if (parsed === null && record.truncated === true) this.reason += truncation(record);
    return parsed as EtlRecord | null;
  }

  private reject(record: EtlRecord): EtlRecord {
    // A line, truncated or not: its dead letter holds its text (and its bytes when they are not UTF-8).
    return deadLetter(record, this.id, this.reason);
  }

  /** Logs and exposes what `format: auto` decided since the last batch. */
  private report(): void {
    const detector = this.detector as AutoDetector;
    for (const decision of detector.decisions()) this.announce(decision);
    const fallbacks = detector.fallbacks;
    for (let i = 0; i < fallbacks.length; i++) {
      const n = fallbacks[i] as number;
      if (n === 0) continue;
      const label = (this.candidates[i] as Candidate).label;
      this.metrics
        .counter(
          'etl_parse_fallback_lines_total',
          'Lines parsed by a format other than the one detected for their file',
          {
            format: label,
          },
        )
        .inc(n);
      fallbacks[i] = 0;
    }
  }

  private announce(d: Decision): void {
    const format = d.format ?? 'none';
    const fields = {
      file: d.file,
      format,
      confidence: Math.round(d.confidence * 1000) / 1000,
      sample_lines: d.sampleLines,
      ...(d.previous === undefined ? {} : { previous: d.previous }),
      ...(d.errorLog ? { output: `${this.id}.${ERROR_LOG_PORT}` } : {}),
    };
    if (d.format === undefined) this.logger.warn('parse: no candidate format fits the sampled lines', fields);
    else if (d.previous !== undefined) this.logger.info('parse: detected format revised', fields);
    else this.logger.info('parse: detected format', fields);
    const before = this.fileFormats.get(d.file);
    if (before !== undefined) this.setFileCount(before, -1);
    else if (this.fileFormats.size >= MAX_TRACKED_FILES) {
      // Rotated-away files stop counting, as the detector forgets them too.
      const [oldFile, oldFormat] = this.fileFormats.entries().next().value as [string, string];
      this.fileFormats.delete(oldFile);
      this.setFileCount(oldFormat, -1);
    }
    this.fileFormats.delete(d.file);
    this.fileFormats.set(d.file, format);
    this.setFileCount(format, 1);
    this.metrics
      .gauge('etl_parse_detection_confidence', 'Share of sampled lines the detected format fits (latest decision)', {
        format,
      })
      .set(d.confidence);
  }

  private setFileCount(format: string, delta: number): void {
    const n = (this.filesByFormat.get(format) ?? 0) + delta;
    this.filesByFormat.set(format, n);
    this.metrics.gauge('etl_parse_detected_format', 'Files (or sources) detected as each format', { format }).set(n);
  }
}

/**
 * The detector's candidates: each format as given, then the tolerant variants of those that end with a
 * quoted value (after them, so that a strict fit wins a tie).
 */
function autoCandidates(specs: readonly FormatSpec[], compile: CompileContext): Candidate[] {
  const strict: Candidate[] = [];
  const tolerant: Candidate[] = [];
  for (const spec of specs) {
    const label = formatLabel(spec);
    if (isErrorLogFormat(spec)) {
      strict.push({ label, parser: compileErrorLog(spec, compile), errorLog: true, tolerant: false, specificity: 0 });
      continue;
    }
    const parser = compileAccess(spec, compile);
    const specificity = parser instanceof TemplateFormat ? parser.fieldCount : 0;
    strict.push({ label, parser, errorLog: false, tolerant: false, specificity });
    const variant = parser instanceof TemplateFormat ? parser.tolerantVariant() : undefined;
    if (variant !== undefined) {
      tolerant.push({ label: `${label}+tolerant`, parser: variant, errorLog: false, tolerant: true, specificity });
    }
  }
  return [...strict, ...tolerant];
}

/** How many bytes base64 text decodes to, without decoding it. */
function base64Bytes(text: string): number {
  const padding = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  return (text.length * 3) / 4 - padding;
}

/** What the reason says of a line the source cut: its size as read, and the setting that cut it. */
function truncation(record: EtlRecord): string {
  const size = record.line_bytes;
  const limit = record.max_line_bytes;
  if (typeof size !== 'number' || typeof limit !== 'number') return ' (the source truncated this line)';
  const of = record.line_bytes_at_least === true ? `at least ${size}` : `${size}`;
  return ` (the source cut this line of ${of} bytes at max_line_bytes (${limit}))`;
}
