/**
 * Test operators in the spirit of OpenTelemetry's consumertest: a counting source, a pass-through,
 * and sinks that collect, slow down, or fail. They go through the real runtime like any operator.
 */
import {
  defineSink,
  defineSource,
  defineTransform,
  type OperatorDefinition,
  type Sink,
} from '../../engine/operator.ts';
import { type EtlRecord, ORIGIN } from '../../engine/record.ts';
import { EtlError } from '../../engine/errors.ts';
import { sleep } from '../../engine/retry.ts';

export interface CountingSourceOptions {
  count: number;
  batch?: number;
  /** Prefix of record ids, so several sources are told apart. */
  prefix?: string;
}

/** Records observed by each collecting sink, by sink name; tests reset it. */
export const collected = new Map<string, EtlRecord[]>();
/** Source read positions over time, for backpressure assertions. */
export const sourceLog: Array<{ source: string; emitted: number; at: number }> = [];

export const countingSource = defineSource({
  type: 'test_counter',
  stability: 'alpha',
  summary: 'emits records {id: n} for n in [position, count)',
  schema: { $id: 'test_counter', type: 'object' } as const,
  examples: [],
  outputs: { default: 'any' },
  create(options: CountingSourceOptions, ctx) {
    const batch = options.batch ?? ctx.batchMaxRecords;
    const prefix = options.prefix ?? ctx.id;
    let next = typeof ctx.restoredPosition === 'number' ? ctx.restoredPosition : 0;
    return {
      async run(out) {
        while (next < options.count && !out.stopping.aborted) {
          const records: EtlRecord[] = [];
          const end = Math.min(options.count, next + batch);
          for (let i = next; i < end; i++) {
            const record: EtlRecord = { id: `${prefix}-${i}` };
            record[ORIGIN] = { source: ctx.id, line: i + 1 };
            records.push(record);
          }
          next = end;
          sourceLog.push({ source: ctx.id, emitted: end, at: Date.now() });
          await out.emit(records, end);
        }
      },
    };
  },
});

export const passThrough = defineTransform({
  type: 'test_pass',
  stability: 'alpha',
  summary: 'forwards every batch unchanged',
  schema: { $id: 'test_pass', type: 'object' } as const,
  examples: [],
  accepts: ['any'],
  outputs: { default: 'any' },
  create() {
    return { process: (records: EtlRecord[]) => ({ default: records }) };
  },
});

export interface CountingTransformOptions {
  /** Records are counted per `id`'s number modulo `keys`. */
  keys: number;
  /** Fails the first `fail_first` attempts at each batch with a retriable error. */
  fail_first?: number;
  /** Holds records back and emits them on flush (in order). */
  hold?: boolean;
}

/** Calls of the two-phase hooks of counting transforms, by stage id; tests reset it. */
export const transformPhases = new Map<string, string[]>();

/**
 * A stateful transform: a running count per key in keyed state (emitted as `count`), the total seen as
 * inline snapshot state (emitted as `seen`), and two-phase hooks that log their calls.
 */
export const countingTransform = defineTransform({
  type: 'test_counting',
  stability: 'alpha',
  summary: 'running counts per key, in keyed state',
  schema: { $id: 'test_counting', type: 'object' } as const,
  examples: [],
  accepts: ['any'],
  outputs: { default: 'any' },
  create(options: CountingTransformOptions, ctx) {
    const counts = ctx.keyed<number>('counts');
    const phases = transformPhases.get(ctx.id) ?? [];
    transformPhases.set(ctx.id, phases);
    let seen = 0;
    let held: EtlRecord[] = [];
    const attempts = new Map<string, number>();
    return {
      process(records: EtlRecord[]) {
        const first = String(records[0]?.id);
        const attempt = (attempts.get(first) ?? 0) + 1;
        attempts.set(first, attempt);
        if (attempt <= (options.fail_first ?? 0)) {
          throw new EtlError('ETL_RUN_STAGE_FAILED', `attempt ${attempt} at ${first} failed`, { retriable: true });
        }
        const out: EtlRecord[] = [];
        for (const record of records) {
          const key = `k${Number(String(record.id).split('-').at(-1)) % options.keys}`;
          const count = (counts.get(key) ?? 0) + 1;
          counts.set(key, count);
          seen++;
          const next: EtlRecord = { ...record, key, count, seen };
          out.push(next);
        }
        if (options.hold) {
          held.push(...out);
          return { default: [] };
        }
        return { default: out };
      },
      flush() {
        const out = held;
        held = [];
        return { default: out };
      },
      snapshot: () => ({ seen }),
      restore(state) {
        seen = (state as { seen?: number } | undefined)?.seen ?? 0;
      },
      async prepareCommit(snapshot) {
        phases.push(`prepare ${snapshot.id}`);
      },
      async commit(snapshot) {
        phases.push(`commit ${snapshot.id}`);
      },
    };
  },
});

export interface CollectOptions {
  name: string;
  delay_ms?: number;
  /** Fail every write whose batch holds this id. */
  fail_on?: string;
  /** Dead-letter records whose id ends with this suffix. */
  reject_suffix?: string;
  /** The first this many writes fail with a retriable error (a server gone for a moment). */
  fail_first_writes?: number;
  /** Every write fails. */
  fail_always?: boolean;
}

export const collectSink = defineSink({
  type: 'test_collect',
  stability: 'alpha',
  summary: 'keeps every record in memory under `name`',
  schema: { $id: 'test_collect', type: 'object' } as const,
  examples: [],
  accepts: ['any'],
  create(options: CollectOptions) {
    const bucket = collected.get(options.name) ?? [];
    collected.set(options.name, bucket);
    let failures = 0;
    return {
      async write(records, ctx) {
        if (options.delay_ms) await sleep(options.delay_ms);
        if (options.fail_always) throw new Error('this sink refuses every write');
        if (failures < (options.fail_first_writes ?? 0)) {
          failures++;
          throw new EtlError('ETL_RUN_SINK_FAILED', `write ${failures} refused for now`, { retriable: true });
        }
        if (options.fail_on && records.some((r) => r.id === options.fail_on)) {
          throw new Error(`refused batch holding ${options.fail_on}`);
        }
        for (const r of records) {
          if (options.reject_suffix && String(r.id).endsWith(options.reject_suffix))
            ctx.deadLetter(r, 'rejected by test');
          else bucket.push(r);
        }
      },
    };
  },
});

export interface CommittingOptions {
  name: string;
  commit_ms: number;
  write_ms: number;
  /** Implements `cut`: takes writes of the next snapshot while one commits. */
  cut: boolean;
  /** The commit of this snapshot fails. */
  fail_commit_at?: number | undefined;
}

/** What each commit of a committing sink held, by sink name; tests reset it. */
export const commits = new Map<
  string,
  Array<{ id: number; position: unknown; committed: number; writtenDuringCommit: number }>
>();

/** A two-phase sink with a slow commit that records how many records each snapshot's commit holds. */
export const committingSink = defineSink({
  type: 'test_committing',
  stability: 'alpha',
  summary: 'counts records; each commit takes commit_ms',
  schema: { $id: 'test_committing', type: 'object' } as const,
  examples: [],
  accepts: ['any'],
  create(options: CommittingOptions) {
    const log = commits.get(options.name) ?? [];
    commits.set(options.name, log);
    let written = 0;
    let atCut = 0;
    let committing = false;
    let writtenDuringCommit = 0;
    const sink: Sink = {
      async write(records) {
        await sleep(options.write_ms);
        written += records.length;
        if (committing) writtenDuringCommit += records.length;
      },
      async prepareCommit() {
        if (!options.cut) atCut = written;
        committing = true;
        return undefined;
      },
      async commit(snapshot) {
        await sleep(options.commit_ms);
        if (snapshot.id === options.fail_commit_at) throw new Error(`commit of snapshot ${snapshot.id} failed`);
        log.push({ id: snapshot.id, position: snapshot.positions.src, committed: atCut, writtenDuringCommit });
        committing = false;
        writtenDuringCommit = 0;
      },
    };
    if (options.cut) {
      sink.cut = () => {
        atCut = written;
      };
    }
    return sink;
  },
});

export interface LedgerOptions {
  name: string;
  /** The commit of this snapshot fails, as a crash between the two phases would leave it. */
  fail_commit_at?: number;
}

/** A sink's own storage: the records it committed and the snapshot they were committed with. */
export const ledgers = new Map<
  string,
  { committedId: number | undefined; positions: Readonly<Record<string, unknown>>; records: string[] }
>();

/** A transactional sink that keeps its commit record in its own storage (the ledger), and can cut. */
export const ledgerSink = defineSink({
  type: 'test_ledger',
  stability: 'alpha',
  summary: 'commits record ids to an in-memory ledger with the snapshot id',
  schema: { $id: 'test_ledger', type: 'object' } as const,
  examples: [],
  accepts: ['any'],
  create(options: LedgerOptions) {
    const ledger = ledgers.get(options.name) ?? { committedId: undefined, positions: {}, records: [] };
    ledgers.set(options.name, ledger);
    let open: string[] = [];
    let prepared: string[] = [];
    return {
      async write(records) {
        await sleep(1);
        for (const r of records) open.push(String(r.id));
      },
      cut() {
        prepared = open;
        open = [];
      },
      async prepareCommit() {
        return undefined;
      },
      async commit(snapshot) {
        if (snapshot.id === options.fail_commit_at) throw new Error(`commit of snapshot ${snapshot.id} failed`);
        ledger.records.push(...prepared);
        ledger.committedId = snapshot.id;
        ledger.positions = snapshot.positions;
        prepared = [];
      },
      async committedCheckpoint() {
        return ledger.committedId === undefined ? undefined : { id: ledger.committedId, positions: ledger.positions };
      },
    };
  },
});

export const testOperators: readonly OperatorDefinition[] = [
  countingSource as OperatorDefinition,
  passThrough as OperatorDefinition,
  collectSink as OperatorDefinition,
  committingSink as OperatorDefinition,
  ledgerSink as OperatorDefinition,
  countingTransform as OperatorDefinition,
];
