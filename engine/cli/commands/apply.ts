/**
 * `etl apply`: validate everything first (nothing runs if any document is wrong), then run every
 * pipeline until its finite inputs end or a signal stops it. First SIGINT/SIGTERM: stop sources, drain,
 * flush, checkpoint. Second signal (or the shutdown deadline): abort at once, keeping the last checkpoint.
 */
import { loadPipelines } from '../../config/load.ts';
import type { PipelineSpec, TelemetrySettings } from '../../config/types.ts';
import { formatDiagnostic, hasErrors } from '../../diagnostics.ts';
import { EtlError, errorMessage } from '../../errors.ts';
import { redact } from '../../redact.ts';
import { planPipeline } from '../../runtime/plan.ts';
import { type RunResult, runPipeline } from '../../runtime/run.ts';
import { createLogger, type EtlLogger } from '../../telemetry/logger.ts';
import { createProgressBoard, type ProgressBoard } from '../../telemetry/progress.ts';
import { createTelemetry } from '../../telemetry/telemetry.ts';
import type { Telemetry } from '../../telemetry/types.ts';

export interface ApplyOptions {
  dryRun: boolean;
  progress: boolean;
  /** Wait for another process running one of the pipelines, instead of refusing. */
  wait?: boolean;
  /** Start over: checkpoints set aside. */
  reset?: boolean;
  /** Stage renames (old → new) and stages to forget, for checkpoints made before the pipeline changed. */
  renames?: Readonly<Record<string, string>>;
  forget?: readonly string[];
  /** Undefined: ETL_LOG_LEVEL, else info. */
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** `pretty`: one human-readable line per event (coloured on a terminal); `json`: one JSON object per line. */
  logFormat: 'pretty' | 'json';
  out: NodeJS.WriteStream;
  err: NodeJS.WriteStream;
  /** Process signals to honour; tests pass an emitter of their own. */
  signals?: NodeJS.EventEmitter;
  /** Clock, for tests. */
  now?: () => number;
}

export async function runApply(paths: string[], options: ApplyOptions): Promise<number> {
  const { pipelines, diagnostics } = await loadPipelines(paths);
  const secrets = pipelines.flatMap((p) => p.secrets);
  for (const d of diagnostics) options.err.write(`${redact(formatDiagnostic(d), secrets)}\n`);
  if (hasErrors(diagnostics)) {
    options.err.write('nothing was run: fix the errors above (etl validate shows them too)\n');
    return 1;
  }
  if (pipelines.length === 0) {
    options.err.write('no pipeline found in the given paths\n');
    return 1;
  }
  if (options.dryRun) return dryRun(pipelines, options);

  const stop = new AbortController();
  const abort = new AbortController();
  const signals = options.signals ?? process;
  const board = createProgressBoard({ stream: options.err, tty: liveProgress(pipelines, options) });
  const colorize = options.err.isTTY === true && !process.env.NO_COLOR;
  const rootLogger = createLogger({
    level: options.logLevel,
    format: options.logFormat,
    colorize,
    stream: board.log,
    secrets,
  });
  let deadline: NodeJS.Timeout | undefined;
  let over = false;
  let stopSignal: StopSignal | undefined;
  let stoppedAt = 0;
  const now = options.now ?? Date.now;
  const onSignal = (signal: StopSignal) => {
    if (over) return;
    if (!stop.signal.aborted) {
      rootLogger.warn(`${signal}: stopping sources, draining and checkpointing (send it again to abort)`);
      stopSignal = signal;
      stoppedAt = now();
      stop.abort();
      const timeoutMs = Math.max(...pipelines.map((p) => p.settings.shutdownTimeoutMs));
      deadline = setTimeout(() => {
        rootLogger.error(`shutdown took longer than ${timeoutMs} ms; aborting`);
        abort.abort();
      }, timeoutMs);
      deadline.unref();
    } else if (!abort.signal.aborted && (signal !== stopSignal || now() - stoppedAt > SAME_SIGNAL_MS)) {
      rootLogger.error(`${signal} again: aborting now; the next run resumes from the last checkpoint`);
      abort.abort();
    }
  };
  for (const signal of STOP_SIGNALS) signals.on(signal, onSignal);
  // One telemetry for the process: pipelines share the exporter and the /metrics port, told apart by labels.
  const telemetry = await createTelemetry(mergeTelemetrySettings(pipelines), {
    logger: rootLogger,
    pipelines: pipelines.map((p) => p.name),
  });
  try {
    const results = await Promise.all(
      pipelines.map((spec) =>
        runOne(spec, options, { rootLogger, board, telemetry, stop: stop.signal, abort: abort.signal, secrets }),
      ),
    );
    return exitCode(pipelines, results, stopSignal);
  } finally {
    if (deadline) clearTimeout(deadline);
    // The handlers stay, inert: removed, they would give a signal arriving now its default action, which
    // kills the process instead of letting it end with the run's exit code.
    over = true;
    await telemetry.shutdown();
  }
}

type StopSignal = 'SIGINT' | 'SIGTERM' | 'SIGHUP';
const STOP_SIGNALS: readonly StopSignal[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const SIGNAL_NUMBERS: Record<StopSignal, number> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };
/**
 * The same signal repeated within this time is the same request delivered twice: a terminal's Ctrl-C reaches
 * the whole process group, and a launcher in it (bin/runtime.js, npx) passes it on as well. A person pressing
 * Ctrl-C twice to abort takes longer than this; another signal (SIGINT after SIGTERM) aborts at once.
 */
const SAME_SIGNAL_MS = 300;

/**
 * A stdout sink's reader went away (`etl apply p.yaml | head`): 128 + SIGPIPE, the status a shell gives a program
 * that SIGPIPE ends, and what a signal cutting a finite run short gives here too. The run is not done (no checkpoint
 * past what was written, the next run writes the rest) but nothing is wrong with it: `set -o pipefail` scripts
 * already tell 141 from a failure.
 */
const OUTPUT_CLOSED = 141;

/** Whether `error` (or one it wraps) says that standard output's reader went away. */
function outputClosed(error: unknown): boolean {
  for (let e = error; e instanceof Error; e = e.cause) {
    if (e instanceof EtlError && e.code === 'ETL_OUTPUT_CLOSED') return true;
  }
  return false;
}

/**
 * 0 when every pipeline succeeded: its inputs ended, or it reads without end (`follow: true`) and a signal
 * stopped it, its normal way to end. A finite run cut short by a signal did not do its job: 128 + the signal's
 * number, as a shell reports it (130 for Ctrl-C). Any failure (a stage's report failing the run too: a quality
 * threshold not met, everything delivered), or an input a source could not read completely (a corrupt compressed
 * file, say; the rest was delivered): 1. Only stdout sinks whose reader went away failed: OUTPUT_CLOSED.
 */
function exitCode(pipelines: readonly PipelineSpec[], results: readonly RunResult[], signal: StopSignal | undefined) {
  if (results.some((r) => r.stats.inputErrors > 0)) return 1;
  if (!results.every((r) => r.ok)) return results.every((r) => r.ok || outputClosed(r.error)) ? OUTPUT_CLOSED : 1;
  const cutShort = results.some((r, i) => r.stopped && !isUnbounded(pipelines[i] as PipelineSpec));
  return cutShort && signal ? 128 + SIGNAL_NUMBERS[signal] : 0;
}

function isUnbounded(spec: PipelineSpec): boolean {
  return spec.stages.some((stage) => {
    const def = stage.definition;
    return def.kind === 'source' && def.unbounded?.(stage.options) === true;
  });
}

/**
 * Traces are on if any pipeline asks for them; the first metrics port declared is served, the first sampling
 * ratio set applies to the process.
 */
function mergeTelemetrySettings(pipelines: readonly PipelineSpec[]): TelemetrySettings {
  const otlp = pipelines.find((p) => p.telemetry.traces === 'otlp');
  const metrics = pipelines.find((p) => p.telemetry.prometheusPort !== undefined);
  const sampled = pipelines.find((p) => p.telemetry.sampleRatio !== undefined);
  return {
    traces: otlp ? 'otlp' : 'none',
    ...(otlp?.telemetry.otlpEndpoint ? { otlpEndpoint: otlp.telemetry.otlpEndpoint } : {}),
    ...(sampled?.telemetry.sampleRatio !== undefined ? { sampleRatio: sampled.telemetry.sampleRatio } : {}),
    ...(metrics ? { prometheusPort: metrics.telemetry.prometheusPort } : {}),
  };
}

/**
 * Live rows redrawn in place need a terminal that nothing else writes to unannounced: not with `--no-progress`,
 * not when standard error is not a terminal, not when a stdout sink prints records to the same terminal.
 */
function liveProgress(pipelines: readonly PipelineSpec[], options: ApplyOptions): boolean {
  if (!options.progress || options.err.isTTY !== true) return false;
  const recordsOnTerminal =
    options.out.isTTY === true && pipelines.some((p) => p.stages.some((s) => s.kind === 'sink' && s.type === 'stdout'));
  return !recordsOnTerminal;
}

/** What the pipelines of one `etl apply` share. */
interface Shared {
  readonly rootLogger: EtlLogger;
  readonly board: ProgressBoard;
  readonly telemetry: Telemetry;
  readonly stop: AbortSignal;
  readonly abort: AbortSignal;
  readonly secrets: readonly string[];
}

async function runOne(spec: PipelineSpec, options: ApplyOptions, shared: Shared): Promise<RunResult> {
  const { board, telemetry, stop, abort, secrets } = shared;
  const logger = shared.rootLogger.child({ pipeline: spec.name });
  const progress = board.track(spec.name);
  const result = await runPipeline(spec, {
    telemetry,
    logger: (stage) => (stage ? logger.child({ stage }) : logger),
    stop,
    abort,
    waitForLock: options.wait === true,
    reset: options.reset === true,
    renames: options.renames ?? {},
    forget: options.forget ?? [],
    onStats: (stats) => progress.update(stats),
  });
  progress.finish(result.stats, {
    ok: result.ok,
    stopped: result.stopped,
    ...(result.error ? { error: redact(errorMessage(result.error), secrets) } : {}),
  });
  return result;
}

async function dryRun(pipelines: PipelineSpec[], options: ApplyOptions): Promise<number> {
  for (const spec of pipelines) {
    options.out.write(`-- pipeline ${spec.name} (${spec.file})\n`);
    try {
      for (const plan of await planPipeline(spec)) {
        options.out.write(`-- ${plan.stage} (${plan.type})\n`);
        if (plan.actions.length === 0) options.out.write('-- nothing to change\n');
        for (const action of plan.actions) options.out.write(`${redact(action, spec.secrets)}\n`);
      }
    } catch (error) {
      options.err.write(`${spec.name}: cannot plan: ${redact(errorMessage(error), spec.secrets)}\n`);
      return 1;
    }
  }
  return 0;
}
