/** Builds PipelineSpecs directly, for runtime tests that must not depend on the YAML loader. */
import { toSettings } from '../../engine/config/settings.ts';
import type { OnError, PipelineSpec, StageSpec } from '../../engine/config/types.ts';
import { parseInputRef } from '../../engine/graph/graph.ts';
import type { OperatorDefinition } from '../../engine/operator.ts';
import { DEFAULT_RETRY } from '../../engine/retry.ts';

export interface StageInit {
  id: string;
  def: OperatorDefinition;
  inputs?: string[];
  options?: Record<string, unknown>;
  onError?: OnError;
  maxInFlight?: number;
  workers?: number;
}

export function stage(init: StageInit): StageSpec {
  return {
    id: init.id,
    kind: init.def.kind,
    type: init.def.type,
    definition: init.def,
    inputs: (init.inputs ?? []).map(parseInputRef),
    options: init.options ?? {},
    onError: init.onError ?? (init.def.kind === 'sink' ? 'retry' : 'dead_letter'),
    retry: { ...DEFAULT_RETRY, initial_backoff_ms: 1, max_backoff_ms: 5 },
    maxInFlight: init.maxInFlight ?? 1,
    workers: init.workers ?? 1,
    position: { file: 'test.yaml', line: 1, column: 1 },
  };
}

export function pipeline(
  name: string,
  dataDir: string,
  stages: StageSpec[],
  settings: Partial<PipelineSpec['settings']> = {},
): PipelineSpec {
  return {
    name,
    file: 'test.yaml',
    settings: {
      ...toSettings(undefined),
      dataDir,
      checkpointIntervalMs: 50,
      batchMaxRecords: 100,
      maxBatchesInFlight: 4,
      shutdownTimeoutMs: 5000,
      ...settings,
    },
    telemetry: { traces: 'none' },
    stages,
    resources: [],
    secrets: [],
  };
}
