/** `spec.settings` and `spec.telemetry` (validated, defaults applied) → what the runtime reads. */
import { DEFAULT_SETTINGS, LIVE_CHECKPOINT_INTERVAL_SECONDS } from '../schema/envelope.ts';
import type { PipelineDocument } from './document.ts';
import { asRecord } from './stages.ts';
import type { PipelineSettings, TelemetrySettings } from './types.ts';

/**
 * `live`: a source follows its input. Its rows are then meant to be queryable soon after they are written, and a
 * checkpoint is when sinks commit: the default interval is shorter (bench/freshness.ts: p95 from line written to
 * row queryable 375 ms instead of 1,056 ms at 20k lines/s through the enrichment chain), at no cost a finite load
 * would pay.
 */
export function toSettings(spec: Record<string, unknown> | undefined, live = false): PipelineSettings {
  const s = asRecord(spec?.settings) ?? {};
  const seconds = (
    key:
      | 'checkpoint_interval_seconds'
      | 'shutdown_timeout_seconds'
      | 'watermark_lateness_seconds'
      | 'idle_source_seconds',
  ): number => Math.round(Number(s[key] ?? DEFAULT_SETTINGS[key]) * 1000);
  return {
    dataDir: String(s.data_dir ?? DEFAULT_SETTINGS.data_dir),
    checkpointIntervalMs:
      s.checkpoint_interval_seconds === undefined && live
        ? LIVE_CHECKPOINT_INTERVAL_SECONDS * 1000
        : seconds('checkpoint_interval_seconds'),
    batchMaxRecords: Number(s.batch_max_records ?? DEFAULT_SETTINGS.batch_max_records),
    maxBatchesInFlight: Number(s.max_batches_in_flight ?? DEFAULT_SETTINGS.max_batches_in_flight),
    shutdownTimeoutMs: seconds('shutdown_timeout_seconds'),
    eventTimeField: String(s.event_time_field ?? DEFAULT_SETTINGS.event_time_field),
    watermarkLatenessMs: seconds('watermark_lateness_seconds'),
    idleSourceMs: seconds('idle_source_seconds'),
    ...(typeof s.audit_log === 'string' ? { auditLog: s.audit_log } : {}),
  };
}

export function toTelemetry(spec: Record<string, unknown> | undefined): TelemetrySettings {
  const telemetry = asRecord(spec?.telemetry);
  const traces = asRecord(telemetry?.traces);
  const metrics = asRecord(telemetry?.metrics);
  const endpoint = traces?.endpoint;
  const port = metrics?.prometheus_port;
  const ratio = traces?.sample_ratio;
  return {
    traces: traces?.exporter === 'otlp' ? 'otlp' : 'none',
    ...(typeof endpoint === 'string' ? { otlpEndpoint: endpoint } : {}),
    ...(typeof ratio === 'number' ? { sampleRatio: ratio } : {}),
    ...(typeof port === 'number' ? { prometheusPort: port } : {}),
  };
}

/** Settings that are valid one by one but make no sense together. */
export function checkTelemetry(pipeline: PipelineDocument, spec: Record<string, unknown> | undefined): void {
  const traces = asRecord(asRecord(spec?.telemetry)?.traces);
  if (traces?.endpoint !== undefined && traces.exporter !== 'otlp') {
    pipeline.report({
      path: ['spec', 'telemetry', 'traces', 'endpoint'],
      code: 'ETL_CFG_INVALID',
      severity: 'warning',
      message: '`endpoint` is ignored unless `exporter` is `otlp`',
      hint: 'set `exporter: otlp`, or remove `endpoint`',
      target: 'key',
    });
  }
}
