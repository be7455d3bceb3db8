/**
 * An OperatorContext for driving one operator through its contract in a unit test: its logger and
 * metrics record what they are given, so tests can assert on logs and metric values.
 */
import { detachedState } from '../../engine/runtime/noop.ts';
import type { Logger, OperatorContext } from '../../engine/operator.ts';

export interface LogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  fields: Record<string, unknown> | undefined;
}

export interface RecordingContext extends OperatorContext {
  readonly logs: LogEntry[];
  /** Metric values by `name`, or `name{label=value,…}` when the metric has labels. */
  readonly values: Map<string, number>;
  /** Resolves with the first entry, logged already or later, whose message includes `text`. */
  logged(text: string): Promise<LogEntry>;
}

export function metricKey(name: string, labels: Record<string, string> = {}): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
  return parts.length === 0 ? name : `${name}{${parts.join(',')}}`;
}

export function recordingContext(overrides: Partial<OperatorContext> = {}): RecordingContext {
  const logs: LogEntry[] = [];
  const values = new Map<string, number>();
  const waiters = new Set<(entry: LogEntry) => void>();
  const log =
    (level: LogEntry['level']) =>
    (message: string, fields?: Record<string, unknown>): void => {
      const entry = { level, message, fields };
      logs.push(entry);
      for (const wake of waiters) wake(entry);
    };
  const logged = (text: string): Promise<LogEntry> => {
    const earlier = logs.find((l) => l.message.includes(text));
    if (earlier) return Promise.resolve(earlier);
    return new Promise((resolve) => {
      const check = (entry: LogEntry) => {
        if (!entry.message.includes(text)) return;
        waiters.delete(check);
        resolve(entry);
      };
      waiters.add(check);
    });
  };
  const logger: Logger = { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
  return {
    pipeline: 'test',
    id: 'stage',
    logger,
    signal: new AbortController().signal,
    dataDir: process.cwd(),
    baseDir: process.cwd(),
    metrics: {
      counter: (name, _help, labels) => ({
        inc: (value = 1) => values.set(metricKey(name, labels), (values.get(metricKey(name, labels)) ?? 0) + value),
      }),
      gauge: (name, _help, labels) => ({ set: (value) => values.set(metricKey(name, labels), value) }),
    },
    requestCheckpoint: () => {},
    readPorts: new Set(['default', 'dead_letter', 'error_log']),
    ...detachedState,
    ...overrides,
    logs,
    values,
    logged,
  };
}
