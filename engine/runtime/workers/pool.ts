/**
 * Worker threads for a chain of stateless stages (`workers: N`; README.md in this folder).
 *
 * The runtime keeps every stage of the chain in its graph, with its own credit, acks, telemetry and ports: only
 * `process` moves. The first stage's transform (`ChainHead`) sends each batch to the least busy worker, which runs it
 * through every stage of the chain; the records a stage passes to the next one stay in the worker, and the next
 * stage's transform (`ChainLink`) finds what its worker made of them on the array it is handed (which holds only
 * their count). The stage operator keeps batches in order whatever order the workers finish in.
 *
 * Hand-written on node:worker_threads rather than a task pool such as piscina: each worker holds the stages it was
 * created with (an open GeoIP database, a compiled format) and answers with notes to replay, and the pool must
 * replace a worker that died and send its batches again (the stages are stateless: running a batch twice is safe).
 */
import { Worker } from 'node:worker_threads';
import { EtlError, type ErrorCode } from '../../errors.ts';
import type { Logger, OperatorMetrics, PortRecords, Transform } from '../../operator.ts';
import type { EtlRecord } from '../../record.ts';
import { decodePorts, encodeBatch, transferList } from './codec.ts';
import type { ErrorInfo, Note, Reply, StageOutcome, WorkerInit } from './protocol.ts';

/** Replacements in a row without a batch done in between, after which batches fail rather than kill another. */
const MAX_RESPAWNS = 3;
const CLOSE_TIMEOUT_MS = 10_000;
const YOUNG_GENERATION_MB = 8;

/** The stage's own logger and metrics, on which its workers' notes are replayed. */
export interface StageOutlet {
  readonly logger: Logger;
  readonly metrics: OperatorMetrics;
}

interface Task {
  readonly id: number;
  readonly records: EtlRecord[];
  readonly resolve: (outcomes: StageOutcome[]) => void;
  readonly reject: (error: Error) => void;
}

interface Thread {
  readonly worker: Worker;
  readonly tasks: Map<number, Task>;
  ready: Promise<void>;
  dead: boolean;
}

function toError(info: ErrorInfo): EtlError {
  return new EtlError((info.code ?? 'ETL_RUN_STAGE_FAILED') as ErrorCode, info.message, {
    retriable: info.retriable === true,
  });
}

export class WorkerChain {
  private readonly init: WorkerInit;
  private readonly size: number;
  private readonly outlets: StageOutlet[] = [];
  private threads: Thread[] = [];
  private nextId = 1;
  private respawns = 0;
  private closing: Promise<void> | undefined;

  constructor(init: WorkerInit, size: number) {
    this.init = init;
    this.size = size;
  }

  /** Where the notes of stage `index` are replayed: its logger and metrics on the main thread. */
  attach(index: number, outlet: StageOutlet): void {
    this.outlets[index] = outlet;
  }

  get length(): number {
    return this.init.stages.length;
  }

  /** Starts every worker; fails when a stage cannot be created or opened in one. */
  async open(): Promise<void> {
    for (let i = 0; i < this.size; i++) this.threads.push(this.spawn());
    await Promise.all(this.threads.map((t) => t.ready));
  }

  /** What each stage of the chain made of `records` (decoded on `take`). */
  run(records: EtlRecord[]): Promise<StageOutcome[]> {
    return new Promise((resolve, reject) => {
      this.dispatch({ id: this.nextId++, records, resolve, reject });
    });
  }

  private dispatch(task: Task): void {
    if (this.closing) {
      task.reject(new Error(`stage ${this.stageId(0)}: its worker threads are closed`));
      return;
    }
    let best: Thread | undefined;
    for (const thread of this.threads) {
      if (!thread.dead && (best === undefined || thread.tasks.size < best.tasks.size)) best = thread;
    }
    if (!best) {
      task.reject(new Error(`stage ${this.stageId(0)}: no worker thread is running`));
      return;
    }
    best.tasks.set(task.id, task);
    const batch = encodeBatch(task.records);
    best.worker.postMessage({ type: 'batch', id: task.id, batch }, transferList(batch));
  }

  private stageId(index: number): string {
    return (this.init.stages[index] as WorkerInit['stages'][number]).id;
  }

  private spawn(): Thread {
    // A smaller young generation than V8 gives a worker by default: peak RSS of the enrichment chain on 2 workers
    // 747 → 522 MiB for the same CPU time (bench/workers.ts --lines 300000 --cases enrich, one run each); 4 MiB cost
    // more CPU in garbage collection.
    const worker = new Worker(new URL('./worker.ts', import.meta.url), {
      workerData: this.init,
      resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB },
    });
    const thread: Thread = { worker, tasks: new Map(), ready: Promise.resolve(), dead: false };
    thread.ready = new Promise<void>((resolve, reject) => {
      worker.on('message', (reply: Reply) => {
        this.replay(reply.notes);
        switch (reply.type) {
          case 'ready':
            resolve();
            return;
          case 'open-failed':
            // Its stages cannot be made: a replacement would fail alike, and the run fails at open.
            thread.dead = true;
            reject(toError(reply.error));
            return;
          case 'result': {
            const task = thread.tasks.get(reply.id);
            thread.tasks.delete(reply.id);
            this.respawns = 0;
            task?.resolve(reply.stages);
            return;
          }
          case 'failed': {
            const task = thread.tasks.get(reply.id);
            thread.tasks.delete(reply.id);
            task?.reject(toError(reply.error));
            return;
          }
          default:
            return;
        }
      });
      worker.on('error', (thrown: unknown) => {
        const error = thrown instanceof Error ? thrown : new Error(String(thrown));
        reject(error);
        this.died(thread, error);
      });
      worker.on('exit', (code) => {
        reject(new Error(`worker thread exited with code ${code} before it was ready`));
        this.died(thread, new Error(`worker thread exited with code ${code}`));
      });
    });
    // A start that fails is reported by `open` (or by the batches a replacement was meant to take).
    thread.ready.catch(() => {});
    return thread;
  }

  /**
   * A worker that died (an uncaught error, out of memory) is replaced, and the batches it held are sent again:
   * the stages are stateless, so a batch run twice gives the same records. A worker that keeps dying fails them.
   */
  private died(thread: Thread, error: Error): void {
    if (thread.dead) return;
    thread.dead = true;
    const orphans = [...thread.tasks.values()];
    thread.tasks.clear();
    if (this.closing) {
      for (const task of orphans) task.reject(error);
      return;
    }
    const stage = this.stageId(0);
    if (this.respawns >= MAX_RESPAWNS) {
      for (const task of orphans) {
        task.reject(new Error(`stage ${stage}: worker threads keep dying (${error.message})`));
      }
      return;
    }
    this.respawns++;
    this.outlets[0]?.logger.error(`a worker thread died (${error.message}); it is replaced and its batches run again`);
    const replacement = this.spawn();
    this.threads = this.threads.map((t) => (t === thread ? replacement : t));
    replacement.ready.then(
      () => {
        for (const task of orphans) this.dispatch(task);
      },
      (failure: unknown) => {
        for (const task of orphans) task.reject(failure instanceof Error ? failure : new Error(String(failure)));
      },
    );
  }

  private replay(notes: readonly Note[]): void {
    for (const entry of notes) {
      const outlet = this.outlets[entry.stage];
      if (!outlet) continue;
      if ('log' in entry) outlet.logger[entry.log](entry.message, entry.fields);
      else if (entry.metric === 'counter')
        outlet.metrics.counter(entry.name, entry.help, entry.labels).inc(entry.value);
      else outlet.metrics.gauge(entry.name, entry.help, entry.labels).set(entry.value);
    }
  }

  /** Closes every stage in every worker, then ends the workers. Idempotent. */
  close(): Promise<void> {
    this.closing ??= Promise.all(
      this.threads.map(async (thread) => {
        if (thread.dead) return;
        const closed = new Promise<void>((resolve) => {
          thread.worker.on('message', (reply: Reply) => {
            if (reply.type === 'closed') resolve();
          });
          thread.worker.on('exit', () => resolve());
          setTimeout(resolve, CLOSE_TIMEOUT_MS).unref();
        });
        thread.worker.postMessage({ type: 'close' });
        await closed;
        thread.dead = true;
        await thread.worker.terminate();
      }),
    ).then(() => undefined);
    return this.closing;
  }
}

/** On the array a chain stage passes to the next one: what the workers made of the batch, for the next stages. */
const CARRIED: unique symbol = Symbol('etl.workers.carried');
interface CarriedState {
  readonly outcomes: StageOutcome[];
  readonly input: EtlRecord[];
  /** The next stage threw on this array's records (then real ones, not a count). */
  readonly error?: ErrorInfo;
}
type Carried = EtlRecord[] & { [CARRIED]?: CarriedState };

/**
 * The ports of stage `index` of the chain. Its `default` records stay in the worker when the next stage took them:
 * the array handed on holds only their count. When the next stage threw, they come back, with its error.
 */
function portsOf(chainLength: number, index: number, outcomes: StageOutcome[], input: EtlRecord[]): PortRecords {
  const outcome = outcomes[index];
  if (!outcome) return {};
  const ports = decodePorts(outcome.ports, input);
  if (outcome.failed) {
    const passed: Carried = decodePorts(outcome.failed.input, input).default ?? [];
    passed[CARRIED] = { outcomes, input, error: outcome.failed.error };
    ports.default = passed;
  } else if (index < chainLength - 1 && outcome.passed > 0) {
    const passed: Carried = new Array(outcome.passed);
    passed[CARRIED] = { outcomes, input };
    ports.default = passed;
  }
  return ports;
}

/** The first stage of a chain: its batches go to the workers. */
export class ChainHead implements Transform {
  private readonly chain: WorkerChain;

  constructor(chain: WorkerChain) {
    this.chain = chain;
  }

  open(): Promise<void> {
    return this.chain.open();
  }

  async process(records: EtlRecord[]): Promise<PortRecords> {
    const outcomes = await this.chain.run(records);
    return portsOf(this.chain.length, 0, outcomes, records);
  }

  close(): Promise<void> {
    return this.chain.close();
  }
}

/** A later stage of a chain: what its workers made of the batch comes with it. */
export class ChainLink implements Transform {
  private readonly index: number;
  private readonly length: number;
  private readonly id: string;

  constructor(chain: WorkerChain, index: number, id: string) {
    this.index = index;
    this.length = chain.length;
    this.id = id;
  }

  /** Throws the error the stage met in the worker: the runtime then applies its `on_error` to these records. */
  process(records: EtlRecord[]): PortRecords {
    const carried = (records as Carried)[CARRIED];
    if (!carried) throw new Error(`stage ${this.id} runs in the workers of its chain and got a batch from elsewhere`);
    if (carried.error) throw toError(carried.error);
    return portsOf(this.length, this.index, carried.outcomes, carried.input);
  }
}
