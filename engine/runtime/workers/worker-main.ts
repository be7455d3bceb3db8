/**
 * The work of a worker thread of a chain of stateless stages (pool.ts): creates and opens its own instance of each stage with
 * the stage's options, then runs every batch it is sent through them in turn, and answers with what each stage
 * made of it. Logs and metric changes go back with the answers, for the main thread to replay on the stage's own.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { errorMessage, isRetriable } from '../../errors.ts';
import type {
  Logger,
  OperatorContext,
  OperatorMetrics,
  PortRecords,
  Transform,
  TransformDefinition,
} from '../../operator.ts';
import type { EtlRecord } from '../../record.ts';
import { decodeBatch, type EncodedBatch, encodePorts, portsTransferList } from './codec.ts';
import type { ErrorInfo, Note, Reply, Request, StageOutcome, WorkerInit } from './protocol.ts';
import { assertNoStatefulMethods, statelessContext } from './stateless.ts';

/** Notes waiting for the next answer are sent on their own after this long (a reload logged between batches). */
const NOTES_FLUSH_MS = 200;

const port = parentPort;
if (!port) throw new Error('engine/runtime/workers/worker.ts runs as a worker thread');
const init = workerData as WorkerInit;
let notes: Note[] = [];
let notesTimer: NodeJS.Timeout | undefined;

function note(entry: Note): void {
  notes.push(entry);
  notesTimer ??= setTimeout(() => {
    notesTimer = undefined;
    if (notes.length > 0) post({ type: 'notes', notes: takeNotes() });
  }, NOTES_FLUSH_MS);
}

function takeNotes(): Note[] {
  const taken = notes;
  notes = [];
  return taken;
}

function post(reply: Reply, transfer: ArrayBuffer[] = []): void {
  (port as NonNullable<typeof port>).postMessage(reply, transfer);
}

function errorInfo(error: unknown): ErrorInfo {
  const code = (error as { code?: unknown } | null)?.code;
  return {
    message: errorMessage(error),
    ...(typeof code === 'string' ? { code } : {}),
    retriable: isRetriable(error),
  };
}

function stageLogger(stage: number): Logger {
  const log =
    (level: 'debug' | 'info' | 'warn' | 'error') =>
    (message: string, fields?: Record<string, unknown>): void =>
      note({ stage, log: level, message, ...(fields === undefined ? {} : { fields }) });
  return { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}

function stageMetrics(stage: number): OperatorMetrics {
  return {
    counter: (name, help, labels) => ({
      inc: (value = 1) => note({ stage, metric: 'counter', name, help, ...(labels ? { labels } : {}), value }),
    }),
    gauge: (name, help, labels) => ({
      set: (value) => note({ stage, metric: 'gauge', name, help, ...(labels ? { labels } : {}), value }),
    }),
  };
}

/** The transform definition of `type`: from the registry, or from the modules the run was given. */
async function findTransform(type: string): Promise<TransformDefinition> {
  const { loadOperator } = await import('../../../operators/registry.ts');
  const registered = await loadOperator('transform', type);
  if (registered?.kind === 'transform') return registered;
  for (const url of init.operatorModules) {
    const module = (await import(url)) as Record<string, unknown>;
    for (const value of Object.values(module)) {
      const def = value as Partial<TransformDefinition> | null;
      if (def && typeof def === 'object' && def.kind === 'transform' && def.type === type) {
        return def as TransformDefinition;
      }
    }
  }
  throw new Error(`no transform of type ${type} is registered, nor exported by the run's operator modules`);
}

async function createStages(abort: AbortSignal): Promise<Transform[]> {
  const transforms: Transform[] = [];
  for (const [index, stage] of init.stages.entries()) {
    const definition = await findTransform(stage.type);
    const ctx: OperatorContext = {
      pipeline: init.pipeline,
      id: stage.id,
      logger: stageLogger(index),
      signal: abort,
      dataDir: init.dataDir,
      baseDir: init.baseDir,
      metrics: stageMetrics(index),
      readPorts: new Set(stage.readPorts),
      ...statelessContext(stage.id),
      ...(stage.inputSchema === undefined ? {} : { inputSchema: stage.inputSchema }),
    };
    const transform = await definition.create(stage.options, ctx);
    assertNoStatefulMethods(stage.id, transform);
    transforms.push(transform);
    await transform.open?.();
  }
  return transforms;
}

/**
 * Runs one batch through the chain. When a later stage throws, the chain stops there and the records it was given go
 * back with the error: the main thread then applies that stage's `on_error` to them, as it would have.
 */
async function runBatch(transforms: readonly Transform[], batch: EncodedBatch): Promise<StageOutcome[]> {
  const records = decodeBatch(batch);
  const outcomes: StageOutcome[] = [];
  let input: EtlRecord[] = records;
  const last = transforms.length - 1;
  for (let i = 0; i <= last && input.length > 0; i++) {
    let ports: PortRecords;
    try {
      ports = await (transforms[i] as Transform).process(input);
    } catch (thrown) {
      if (i === 0) throw thrown; // the first stage's own policy applies, on the main thread
      const previous = outcomes[i - 1] as StageOutcome;
      outcomes[i - 1] = {
        ...previous,
        failed: { input: encodePorts({ default: input }, records), error: errorInfo(thrown) },
      };
      break;
    }
    let passed: EtlRecord[] = [];
    if (i < last) {
      const { default: next, ...rest } = ports;
      passed = next ?? [];
      ports = rest;
    }
    outcomes.push({ ports: encodePorts(ports, records), passed: passed.length });
    input = passed;
  }
  return outcomes;
}

async function main(): Promise<void> {
  const abort = new AbortController();
  let transforms: Transform[];
  try {
    transforms = await createStages(abort.signal);
  } catch (error) {
    post({ type: 'open-failed', stage: 0, error: errorInfo(error), notes: takeNotes() });
    return;
  }
  post({ type: 'ready', notes: takeNotes() });
  (port as NonNullable<typeof port>).on('message', (request: Request) => {
    if (request.type === 'close') {
      abort.abort();
      void (async () => {
        for (const transform of transforms) {
          try {
            await transform.close?.();
          } catch (error) {
            note({ stage: 0, log: 'error', message: `close failed: ${errorMessage(error)}` });
          }
        }
        if (notesTimer) clearTimeout(notesTimer);
        post({ type: 'closed', notes: takeNotes() });
      })();
      return;
    }
    runBatch(transforms, request.batch).then(
      (stages) => {
        const transfer = stages.flatMap((s) => [
          ...portsTransferList(s.ports),
          ...(s.failed ? portsTransferList(s.failed.input) : []),
        ]);
        post({ type: 'result', id: request.id, stages, notes: takeNotes() }, transfer);
      },
      (error: unknown) => post({ type: 'failed', id: request.id, error: errorInfo(error), notes: takeNotes() }),
    );
  });
}

await main();
