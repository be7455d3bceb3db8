/**
 * The metrics etl exports, by name (histograms without their _bucket/_sum/_count suffix): the stage counters
 * and process metrics of engine/telemetry/README.md, and the metrics agreed for sources, sinks, edges,
 * checkpoints, freshness and data quality. Dashboards and alerts may use only these, so a misspelt name fails
 * a test instead of drawing an empty panel.
 */
export const ETL_METRIC_NAMES: ReadonlySet<string> = new Set([
  // Per stage (pipeline, component_id, component_kind, component_type).
  'etl_component_received_records_total',
  'etl_component_received_bytes_total',
  'etl_component_sent_records_total',
  'etl_component_errors_total',
  'etl_component_discarded_records_total',
  'etl_component_batches_total',
  'etl_component_batch_duration_seconds',
  'etl_component_dead_lettered_records_total',
  // Edges and sources.
  'etl_edge_inflight_batches',
  'etl_source_credit_wait_seconds',
  'etl_source_read_bytes_total',
  'etl_source_read_lines_total',
  'etl_source_lag_bytes',
  'etl_source_open_files',
  // Sinks and checkpoints.
  'etl_sink_write_duration_seconds',
  'etl_sink_commit_duration_seconds',
  'etl_sink_retries_total',
  'etl_sink_reconnects_total',
  'etl_sink_circuit_state',
  'etl_sink_committed_records_total',
  'etl_checkpoint_duration_seconds',
  'etl_checkpoint_last_success_timestamp_seconds',
  'etl_checkpoint_age_seconds',
  // Data quality and freshness.
  'etl_validate_records_total',
  'etl_validate_rule_failures_total',
  'etl_freshness_event_seconds',
  'etl_freshness_read_seconds',
  // Pipeline and process.
  'etl_pipeline_up',
  'etl_config_reload_failures_total',
  'process_cpu_seconds_total',
  'process_resident_memory_bytes',
  'nodejs_heap_size_used_bytes',
  'nodejs_eventloop_lag_seconds',
]);
