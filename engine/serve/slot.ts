/**
 * One named pipeline of the daemon and its runs. A slot drives its run towards what was asked (a version to
 * run, paused, stopped, deleted) one step at a time, so any number of requests in any order leave at most one
 * run of the pipeline: a new version starts only once the old one has drained and written its final
 * checkpoint, which the new one resumes from (the state store is keyed by pipeline name).
 *
 * A version that fails before it is up (a stage cannot open, a checkpoint that does not fit) while an older
 * version ran is refused: the older one is started again. A run that fails once up is started again after a
 * backoff; one whose finite inputs ended stays completed.
 */
import type { PipelineSpec } from '../config/types.ts';
import { errorMessage } from '../errors.ts';
import { redact } from '../redact.ts';
import type { Logger } from '../operator.ts';
import { type RunResult, runPipeline } from '../runtime/run.ts';
import type { RunStats } from '../runtime/stats.ts';
import type { Telemetry } from '../telemetry/types.ts';

export type PipelineStatus =
  | 'starting'
  | 'running'
  | 'stopping'
  | 'paused'
  | 'stopped'
  | 'completed'
  | 'failed'
  | 'deleted';

/** A version of a pipeline as applied: what runs, and the text it came from. */
export interface Version {
  readonly spec: PipelineSpec;
  /** The document's YAML as written (before interpolation: secrets stay `${VAR}`). */
  readonly yaml: string;
  readonly fingerprint: string;
  /** `file:<path>` for the config directory, `api` for the REST API. */
  readonly owner: string;
  readonly appliedAt: string;
}

export interface LoggedProblem {
  readonly time: string;
  readonly level: 'warn' | 'error';
  readonly stage?: string;
  readonly message: string;
}

export interface SlotEvents {
  /** A version failed before it was up while an older one ran; the older one runs again. */
  reloadFailed(slot: PipelineSlot, version: Version, error: Error): void;
}

export interface SlotOptions {
  readonly telemetry: Telemetry;
  /** The logger of a version of the pipeline, for one of its stages when `stage` is set. */
  readonly logger: (spec: PipelineSpec, stage: string | undefined) => Logger;
  readonly events: SlotEvents;
  /** First wait before a failed run is started again; doubled each time up to `maxRestartDelayMs`. */
  readonly restartDelayMs?: number;
  readonly maxRestartDelayMs?: number;
}

/** Dead letters of the pipeline since the daemon started: routed to `dead_letter`, and written by dead-letter sinks. */
export interface DeadLetterCounts {
  rejected: number;
  sinks: Record<string, number>;
}

interface CurrentRun {
  readonly version: Version;
  readonly stop: AbortController;
  readonly abort: AbortController;
  readonly done: Promise<RunResult>;
  up: boolean;
}

const KEPT_PROBLEMS = 20;

export class PipelineSlot {
  readonly name: string;
  /** The version asked for; undefined once deleted. */
  desired: Version | undefined;
  private intent: 'run' | 'paused' | 'stopped' = 'run';
  private current: CurrentRun | undefined;
  /** The last version that came up: what a refused reload goes back to. */
  private good: Version | undefined;
  /** A version whose run ended on its own (completed, or failed and waiting for its restart): not started again. */
  private ended: string | undefined;
  private outcome: 'completed' | 'failed' | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private restartDelay: number;
  private driving: Promise<void> | undefined;
  private pending = false;
  private readonly options: SlotOptions;
  private readonly problems: LoggedProblem[] = [];
  private readonly deadLetters: DeadLetterCounts = { rejected: 0, sinks: {} };
  /** Dead letters of the current run already added to `deadLetters`. */
  private counted: DeadLetterCounts = { rejected: 0, sinks: {} };
  stats: RunStats | undefined;
  runs = 0;
  /** When the current (or last) run started, epoch ms. */
  startedAt: number | undefined;
  lastError: string | undefined;
  /** Why the last version applied was refused, if it was. */
  lastRefusal: { fingerprint: string; message: string; time: string } | undefined;

  constructor(name: string, version: Version, options: SlotOptions) {
    this.name = name;
    this.desired = version;
    this.options = options;
    this.restartDelay = options.restartDelayMs ?? 1000;
  }

  get status(): PipelineStatus {
    if (!this.desired) return this.current ? 'stopping' : 'deleted';
    if (this.current) {
      if (this.intent !== 'run' || this.current.version.fingerprint !== this.desired.fingerprint) return 'stopping';
      return this.current.up ? 'running' : 'starting';
    }
    if (this.intent === 'paused') return 'paused';
    if (this.intent === 'stopped') return 'stopped';
    if (this.outcome === 'completed' && this.ended === this.desired.fingerprint) return 'completed';
    if (this.outcome === 'failed') return 'failed';
    return 'starting';
  }

  /** The version running now (or starting, or draining), if any. */
  get running(): Version | undefined {
    return this.current?.version;
  }

  get owner(): string | undefined {
    return this.desired?.owner ?? this.current?.version.owner;
  }

  /** Warnings and errors the pipeline logged, most recent last. */
  recentProblems(): readonly LoggedProblem[] {
    return this.problems;
  }

  deadLetterCounts(): DeadLetterCounts {
    this.countDeadLetters();
    return { rejected: this.deadLetters.rejected, sinks: { ...this.deadLetters.sinks } };
  }

  /** Runs `version` (starting it, or reloading the one running); resolves once the slot has settled. */
  apply(version: Version): Promise<void> {
    if (this.desired?.fingerprint !== version.fingerprint) {
      this.lastError = undefined;
      this.ended = undefined;
      this.outcome = undefined;
      this.restartDelay = this.options.restartDelayMs ?? 1000;
    }
    this.desired = version;
    if (this.intent === 'stopped') this.intent = 'run';
    return this.kick();
  }

  pause(): Promise<void> {
    // A finished run has nothing to pause; taking the request would make the next resume run it again.
    if (this.status === 'completed') return Promise.resolve();
    if (this.intent === 'run') this.intent = 'paused';
    return this.kick();
  }

  resume(): Promise<void> {
    // A completed run stays completed (its stats kept): applying a changed version is what runs it again.
    if (this.status === 'completed') return Promise.resolve();
    this.intent = 'run';
    this.ended = undefined;
    this.outcome = undefined;
    return this.kick();
  }

  stop(): Promise<void> {
    if (this.status === 'completed') return Promise.resolve();
    this.intent = 'stopped';
    return this.kick();
  }

  /** Stops the run for good (drained and checkpointed): the pipeline is no longer part of the daemon. */
  delete(): Promise<void> {
    this.desired = undefined;
    return this.kick();
  }

  /** A note logged by the pipeline, kept for the API. */
  note(level: 'warn' | 'error', message: string, stage?: string): void {
    this.problems.push({ time: new Date().toISOString(), level, ...(stage ? { stage } : {}), message });
    if (this.problems.length > KEPT_PROBLEMS) this.problems.shift();
  }

  /** Asks the run to stop now, without draining (the second signal of a shutdown). */
  abortNow(): void {
    this.current?.abort.abort();
  }

  private kick(): Promise<void> {
    this.pending = true;
    // A run still starting (a sink waiting for its server, say) that is no longer wanted is asked to stop now,
    // not once it is up.
    const current = this.current;
    if (current && !current.up && !this.wants(current.version)) current.stop.abort();
    this.driving ??= (async () => {
      try {
        while (this.pending) {
          this.pending = false;
          await this.settle();
        }
      } finally {
        this.driving = undefined;
      }
    })();
    return this.driving;
  }

  private wants(version: Version): boolean {
    return this.intent === 'run' && this.desired?.fingerprint === version.fingerprint;
  }

  /** Steps until the run is what was asked: the old one stopped before a new one starts. */
  private async settle(): Promise<void> {
    for (;;) {
      const want = this.desired && this.intent === 'run' ? this.desired : undefined;
      const current = this.current;
      if (current && (!want || current.version.fingerprint !== want.fingerprint)) {
        current.stop.abort();
        await current.done;
        continue;
      }
      if (!current && want && this.ended !== want.fingerprint) {
        await this.start(want);
        continue;
      }
      return;
    }
  }

  private async start(version: Version): Promise<void> {
    const stop = new AbortController();
    const abort = new AbortController();
    let markUp: () => void = () => {};
    const up = new Promise<void>((resolve) => {
      markUp = resolve;
    });
    this.countDeadLetters();
    this.counted = { rejected: 0, sinks: {} };
    this.stats = undefined;
    this.runs++;
    this.startedAt = Date.now();
    const run: CurrentRun = {
      version,
      stop,
      abort,
      up: false,
      done: runPipeline(version.spec, {
        telemetry: this.options.telemetry,
        logger: (stage) => this.options.logger(version.spec, stage),
        stop: stop.signal,
        abort: abort.signal,
        onStats: (stats) => {
          this.stats = stats;
        },
        onRunning: () => {
          run.up = true;
          markUp();
        },
      }),
    };
    this.current = run;
    const result = await Promise.race([up.then(() => undefined), run.done]);
    if (result === undefined) {
      this.good = version;
      this.restartDelay = this.options.restartDelayMs ?? 1000;
      void run.done.then((ended) => this.finish(run, ended));
      return;
    }
    this.finish(run, result);
    if (result.ok) return;
    const error = result.error ?? new Error('the run ended before it was up');
    const previous = this.good;
    if (!previous || previous.fingerprint === version.fingerprint || this.desired !== version) {
      // Nothing older to go back to (or the same version failing again, a database still down): try later.
      this.scheduleRestart(version);
      return;
    }
    // Refused: the version that ran before comes back, from the checkpoint it wrote when it drained.
    this.lastRefusal = {
      fingerprint: version.fingerprint,
      message: redact(errorMessage(error), version.spec.secrets),
      time: new Date().toISOString(),
    };
    this.options.events.reloadFailed(this, version, error);
    this.desired = previous;
    this.ended = undefined;
    this.outcome = undefined;
  }

  /** Bookkeeping once a run is over, whoever ended it; a failure on its own is retried after a backoff. */
  private finish(run: CurrentRun, result: RunResult): void {
    if (this.current !== run) return;
    this.stats = result.stats;
    this.countDeadLetters();
    this.current = undefined;
    if (result.stopped || (result.ok && run.stop.signal.aborted)) return;
    this.ended = run.version.fingerprint;
    if (result.ok) {
      this.outcome = 'completed';
    } else {
      this.outcome = 'failed';
      this.lastError = redact(errorMessage(result.error), run.version.spec.secrets);
      this.note('error', `run failed: ${this.lastError}`);
      // A run that failed once up is started again later; one that never came up, `start` decides.
      if (run.up) this.scheduleRestart(run.version);
    }
  }

  private scheduleRestart(version: Version): void {
    const delay = this.restartDelay;
    this.restartDelay = Math.min(delay * 2, this.options.maxRestartDelayMs ?? 60_000);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.desired !== version || this.ended !== version.fingerprint) return;
      this.ended = undefined;
      void this.kick();
    }, delay);
    this.restartTimer.unref();
  }

  /** Adds what the current run dead-lettered since the last count to the daemon-long totals. */
  private countDeadLetters(): void {
    const stats = this.stats;
    if (!stats) return;
    this.deadLetters.rejected += stats.rejected - this.counted.rejected;
    this.counted.rejected = stats.rejected;
    for (const [id, sink] of Object.entries(stats.sinks)) {
      if (!sink.deadLetters) continue;
      const seen = this.counted.sinks[id] ?? 0;
      this.deadLetters.sinks[id] = (this.deadLetters.sinks[id] ?? 0) + sink.written - seen;
      this.counted.sinks[id] = sink.written;
    }
  }

  /** Resolves once no run is left (after `delete` or `stop`). */
  async settled(): Promise<void> {
    await this.driving;
  }
}
