/**
 * The run audit log (`settings.audit_log`): one JSON line appended per run, whatever its outcome, saying what the
 * run processed, rejected, wrote and changed, for compliance records ("what was processed, dropped, anonymized and
 * retained"). Lines are only ever appended, each written whole in one `write` and synced before the run reports
 * its outcome: a crash leaves the lines of earlier runs as they were. A run killed outright (SIGKILL) writes none;
 * its work is in the next run's line, which resumes from the same checkpoint.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, open } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { PipelineSpec } from '../config/types.ts';
import { errorMessage } from '../errors.ts';
import { redact } from '../redact.ts';
import type { RunStats } from '../telemetry/types.ts';

export interface RunAuditRecord {
  readonly run_id: string;
  readonly pipeline: string;
  /** The pipeline file, as given. */
  readonly file: string;
  readonly started_at: string;
  readonly ended_at: string;
  readonly outcome: 'succeeded' | 'stopped' | 'failed';
  readonly error?: string;
  readonly records_read: number;
  readonly bytes_read: number;
  /** Records each sink acknowledged, by sink id. */
  readonly written: Record<string, number>;
  /** Records sent to dead letters, by the stage that rejected them. */
  readonly rejected: Record<string, number>;
  /** What stages counted of their work (`StageReport.counts`: anonymize's fields changed, validate's drops…). */
  readonly stages: Record<string, Record<string, number>>;
  /** Each sink's `retention` option, where it has one: how long what it stored is kept. */
  readonly retention: Record<string, unknown>;
}

export interface RunEnd {
  readonly ok: boolean;
  readonly stopped: boolean;
  readonly error?: Error;
  readonly stats: RunStats;
}

export function auditRecord(spec: PipelineSpec, startedAt: Date, end: RunEnd, endedAt = new Date()): RunAuditRecord {
  const { stats } = end;
  const retention: Record<string, unknown> = {};
  for (const stage of spec.stages) {
    if (stage.kind === 'sink' && stage.options.retention !== undefined) retention[stage.id] = stage.options.retention;
  }
  const stages: Record<string, Record<string, number>> = {};
  for (const report of stats.reports) if (report.counts) stages[report.stage] = { ...report.counts };
  return {
    run_id: randomUUID(),
    pipeline: spec.name,
    file: spec.file,
    started_at: startedAt.toISOString(),
    ended_at: endedAt.toISOString(),
    outcome: !end.ok ? 'failed' : end.stopped ? 'stopped' : 'succeeded',
    ...(end.error ? { error: redact(errorMessage(end.error), spec.secrets) } : {}),
    records_read: stats.recordsIn,
    bytes_read: stats.bytesRead,
    written: Object.fromEntries(Object.entries(stats.sinks).map(([id, sink]) => [id, sink.written])),
    rejected: { ...(stats.rejectedBy ?? {}) },
    stages,
    retention,
  };
}

/** Appends `record` to the audit log at `path` (relative to the working directory) and syncs it. */
export async function appendAudit(path: string, record: RunAuditRecord, secrets: readonly string[]): Promise<void> {
  const file = resolve(path);
  await mkdir(dirname(file), { recursive: true });
  const handle = await open(file, 'a', 0o640);
  try {
    await handle.write(`${redact(JSON.stringify(record), secrets)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
}
