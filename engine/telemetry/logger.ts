/**
 * The structured logger handed to the runtime and to every operator: pino, one event per line, as JSON for
 * machines or pretty-printed for people (pino-pretty, loaded only then), every line redacted of secrets.
 */
import { createRequire } from 'node:module';
import type { DestinationStream, Logger as PinoLogger } from 'pino';
import type { PrettyOptions } from 'pino-pretty';
import type { Logger } from '../operator.ts';
import { redact } from '../redact.ts';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'pretty' | 'json';

export interface EtlLogger extends Logger {
  /** A logger whose lines carry these bindings too (`pipeline` and `stage` lead a pretty line). */
  child(bindings: Record<string, unknown>): EtlLogger;
}

export interface LoggerOptions {
  /** Default: `ETL_LOG_LEVEL`, else `info`. */
  level?: LogLevel;
  format: LogFormat;
  stream: { write(chunk: string): unknown };
  /** Pretty format: colour the level (a terminal). Default false. */
  colorize?: boolean;
  /** Values never to print. */
  secrets?: readonly string[];
  bindings?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
  /** Clock, for tests. */
  now?: () => number;
}

const LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];
/** Names every event has; a field of the same name would shadow them, so it is left out. */
const RESERVED = ['time', 'level', 'msg'] as const;

export function parseLogLevel(value: string | undefined): LogLevel | undefined {
  const level = value?.trim().toLowerCase();
  return (LEVELS as readonly string[]).includes(level ?? '') ? (level as LogLevel) : undefined;
}

export function createLogger(options: LoggerOptions): EtlLogger {
  const env = options.env ?? process.env;
  // Checked again: the CLI's default is ETL_LOG_LEVEL as typed (`DEBUG`, `verbose`), which pino would refuse.
  const level = parseLogLevel(options.level) ?? parseLogLevel(env.ETL_LOG_LEVEL) ?? 'info';
  const logger = new PinoEtlLogger(LEVELS.indexOf(level), () => rootLogger(options, level));
  return options.bindings === undefined ? logger : logger.child(options.bindings);
}

/** pino, required at the first line logged: a run that logs nothing (most short ones) never loads it. */
function rootLogger(options: LoggerOptions, level: LogLevel): PinoLogger {
  const { pino } = createRequire(import.meta.url)('pino') as typeof import('pino');
  const now = options.now ?? Date.now;
  return pino(
    {
      level,
      // Stable fields: `time` ISO 8601, `level` by name, `msg`; no pid or hostname (the collector knows the host).
      base: undefined,
      messageKey: 'msg',
      timestamp: () => `,"time":"${new Date(now()).toISOString()}"`,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination(options),
  );
}

/** Redacts each JSON line, then writes it as it is or pretty-printed. */
function destination(options: LoggerOptions): DestinationStream {
  const secrets = secretForms(options.secrets ?? []);
  const out = options.stream;
  if (options.format === 'json') return { write: (line: string) => out.write(redact(line, secrets)) };
  // Made at the first line: a run that logs nothing (most short ones) never loads pino-pretty.
  let pretty: ((line: string) => string) | undefined;
  return {
    write: (line: string) => {
      pretty ??= prettyPrinter(options.colorize === true);
      return out.write(pretty(redact(line, secrets)));
    },
  };
}

/** pino-pretty, required on first use only: a JSON-only process, or one that logs nothing, never loads it. */
function prettyPrinter(colorize: boolean): (line: string) => string {
  const require = createRequire(import.meta.url);
  const { prettyFactory } = require('pino-pretty') as typeof import('pino-pretty');
  const options: PrettyOptions = {
    colorize,
    singleLine: true,
    translateTime: 'UTC:yyyy-mm-dd"T"HH:MM:ss.l"Z"',
    ignore: 'pipeline,stage',
    // One event, one line: pino-pretty would spread `error` objects over several.
    errorLikeObjectKeys: [],
    messageFormat: (log, messageKey) => {
      const scope = [log.pipeline, log.stage].filter((part) => typeof part === 'string' && part !== '').join('/');
      return scope === '' ? String(log[messageKey]) : `[${scope}] ${String(log[messageKey])}`;
    },
  };
  return prettyFactory(options);
}

/** A pino logger made on first use: the level is checked without it, children are made from their parent's. */
class PinoEtlLogger implements EtlLogger {
  /** Index in LEVELS of the lowest level written. */
  readonly #level: number;
  readonly #make: () => PinoLogger;
  #pino: PinoLogger | undefined;

  constructor(level: number, make: () => PinoLogger) {
    this.#level = level;
    this.#make = make;
  }

  #logger(): PinoLogger {
    this.#pino ??= this.#make();
    return this.#pino;
  }

  debug(message: string, fields?: Record<string, unknown>): void {
    if (this.#level <= 0) this.#logger().debug(plain(fields), message);
  }
  info(message: string, fields?: Record<string, unknown>): void {
    if (this.#level <= 1) this.#logger().info(plain(fields), message);
  }
  warn(message: string, fields?: Record<string, unknown>): void {
    if (this.#level <= 2) this.#logger().warn(plain(fields), message);
  }
  error(message: string, fields?: Record<string, unknown>): void {
    if (this.#level <= 3) this.#logger().error(plain(fields), message);
  }

  child(bindings: Record<string, unknown>): EtlLogger {
    const own = plain(bindings) ?? {};
    return new PinoEtlLogger(this.#level, () => this.#logger().child(own));
  }
}

/**
 * Fields as pino should print them: errors as `{ name, message, code }` (pino prints an Error anywhere but
 * under `err` as `{}`), undefined values and reserved names left out.
 */
function plain(fields: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (fields === undefined) return undefined;
  let copy: Record<string, unknown> | undefined;
  for (const key of RESERVED) {
    if (key in fields) {
      copy ??= { ...fields };
      delete copy[key];
    }
  }
  for (const key in fields) {
    const value = fields[key];
    if (value instanceof Error) {
      copy ??= { ...fields };
      const code = (value as { code?: unknown }).code;
      copy[key] =
        code === undefined
          ? { name: value.name, message: value.message }
          : { name: value.name, message: value.message, code };
    }
  }
  return copy ?? fields;
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
