/**
 * The structured logger handed to the runtime and to every operator. One line per event, as text for
 * people (`<time> INFO  [pipeline/stage] message key=value`) or JSON for machines, every line redacted.
 */
import type { Logger } from '../operator.ts';
import { redact } from '../redact.ts';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'text' | 'json';

export interface EtlLogger extends Logger {
  /** A logger whose lines carry these bindings too (`pipeline` and `stage` form the text prefix). */
  child(bindings: Record<string, unknown>): EtlLogger;
}

export interface LoggerOptions {
  /** Default: `ETL_LOG_LEVEL`, else `info`. */
  level?: LogLevel;
  format: LogFormat;
  stream: { write(chunk: string): unknown };
  /** Values never to print. */
  secrets?: readonly string[];
  bindings?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
  /** Clock, for tests. */
  now?: () => number;
}

const SEVERITY: Readonly<Record<LogLevel, number>> = { debug: 10, info: 20, warn: 30, error: 40 };
const TEXT_LABEL: Readonly<Record<LogLevel, string>> = {
  debug: 'DEBUG',
  info: 'INFO ',
  warn: 'WARN ',
  error: 'ERROR',
};
const BARE_VALUE = /^[^\s"=\\]+$/;

export function parseLogLevel(value: string | undefined): LogLevel | undefined {
  const level = value?.trim().toLowerCase();
  return level !== undefined && Object.hasOwn(SEVERITY, level) ? (level as LogLevel) : undefined;
}

export function createLogger(options: LoggerOptions): EtlLogger {
  const env = options.env ?? process.env;
  const level = options.level ?? parseLogLevel(env.ETL_LOG_LEVEL) ?? 'info';
  const shared: Shared = {
    threshold: SEVERITY[level],
    json: options.format === 'json',
    stream: options.stream,
    secrets: secretForms(options.secrets ?? []),
    now: options.now ?? Date.now,
  };
  return new LineLogger(shared, { ...options.bindings });
}

interface Shared {
  readonly threshold: number;
  readonly json: boolean;
  readonly stream: { write(chunk: string): unknown };
  readonly secrets: readonly string[];
  readonly now: () => number;
}

class LineLogger implements EtlLogger {
  readonly #shared: Shared;
  readonly #bindings: Record<string, unknown>;
  /** Text format: `[pipeline/stage] ` and ` key=value` of the bindings, computed once per logger. */
  readonly #prefix: string;
  readonly #suffix: string;

  constructor(shared: Shared, bindings: Record<string, unknown>) {
    this.#shared = shared;
    this.#bindings = bindings;
    const { pipeline, stage, ...rest } = bindings;
    const scope = [pipeline, stage].filter((part) => part !== undefined && part !== '').join('/');
    this.#prefix = scope === '' ? '' : `[${scope}] `;
    this.#suffix = shared.json ? '' : formatFields(rest);
  }

  debug(message: string, fields?: Record<string, unknown>): void {
    this.#log('debug', message, fields);
  }
  info(message: string, fields?: Record<string, unknown>): void {
    this.#log('info', message, fields);
  }
  warn(message: string, fields?: Record<string, unknown>): void {
    this.#log('warn', message, fields);
  }
  error(message: string, fields?: Record<string, unknown>): void {
    this.#log('error', message, fields);
  }

  child(bindings: Record<string, unknown>): EtlLogger {
    return new LineLogger(this.#shared, { ...this.#bindings, ...bindings });
  }

  #log(level: LogLevel, message: string, fields: Record<string, unknown> | undefined): void {
    const shared = this.#shared;
    if (SEVERITY[level] < shared.threshold) return;
    const time = new Date(shared.now()).toISOString();
    const line = shared.json
      ? jsonLine(time, level, message, this.#bindings, fields)
      : `${time} ${TEXT_LABEL[level]} ${this.#prefix}${message}${this.#suffix}${fields ? formatFields(fields) : ''}`;
    shared.stream.write(`${redact(line, shared.secrets)}\n`);
  }
}

/** Each secret as printed raw, inside a JSON string, and percent-encoded in a URL. */
export function secretForms(secrets: readonly string[]): string[] {
  const forms = new Set<string>();
  for (const secret of secrets) {
    if (secret.length === 0) continue;
    forms.add(secret);
    forms.add(JSON.stringify(secret).slice(1, -1));
    forms.add(encodeURIComponent(secret));
  }
  return [...forms];
}

function formatFields(fields: Record<string, unknown>): string {
  let text = '';
  for (const key in fields) {
    const value = fields[key];
    if (value !== undefined) text += ` ${key}=${formatValue(value)}`;
  }
  return text;
}

function formatValue(value: unknown): string {
  if (typeof value === 'string') return BARE_VALUE.test(value) ? value : JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (value === null) return 'null';
  if (value instanceof Error) return formatValue(value.message);
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'InvalidDate' : value.toISOString();
  return safeStringify(value) ?? JSON.stringify(String(value));
}

function jsonLine(
  time: string,
  level: LogLevel,
  message: string,
  bindings: Record<string, unknown>,
  fields: Record<string, unknown> | undefined,
): string {
  // Fixed keys first in the line, and fields cannot overwrite them.
  const event: Record<string, unknown> = Object.assign({ time, level, msg: message }, bindings, fields);
  event.time = time;
  event.level = level;
  event.msg = message;
  return (
    safeStringify(event) ?? JSON.stringify({ time, level, msg: message, log_error: 'fields are not serialisable' })
  );
}

function safeStringify(value: unknown): string | undefined {
  try {
    return JSON.stringify(value, jsonReplacer);
  } catch {
    // Circular structures: the line is still written, without the offending fields.
    return undefined;
  }
}

function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return code === undefined
      ? { name: value.name, message: value.message }
      : { name: value.name, message: value.message, code };
  }
  return value;
}
