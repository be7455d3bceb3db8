/**
 * The dedupe transform. Two stores decide whether a key was seen within the window:
 *
 * - memory: `ctx.keyed('seen')` (key → time of the first occurrence), checkpointed by the runtime, so a rerun
 *   after a crash finds exactly the keys of the committed cut. A batch's decisions are made first and applied
 *   to the map only once nothing can fail any more, so a retried batch counts nothing twice.
 * - redis: one pipelined `SET key marker NX PX window GET` per distinct key of a batch. The marker says who
 *   wrote the key and for which snapshot (see `Marker`), so that a key written by a snapshot that never
 *   committed (a crash, a failed attempt at the same batch) counts as not seen: a replay passes the first
 *   occurrence again instead of dropping it. With `local_cache_keys`, keys this run set are also remembered
 *   locally for their window (bounded): Redis would call their repeats seen, so those need no round trip.
 */
import type { ChainableCommander, Redis } from 'ioredis';
import { EtlError, errorMessage } from '../../../engine/errors.ts';
import type { KeyedState, OperatorContext, PortRecords, StageReport, Transform } from '../../../engine/operator.ts';
import { deadLetter, type EtlRecord, eventTimeOf } from '../../../engine/record.ts';
import { retry, sleep } from '../../../engine/retry.ts';
import {
  type EpochRecord,
  Epochs,
  formatMarker,
  instanceId,
  type Marker,
  parseMarker,
} from '../../shared/run-marker.ts';
import { type KeyOf, keyFunction } from './key.ts';
import { RecentKeys } from './recent-keys.ts';
import type { DedupeOptions } from './schema.ts';

/** What the stage checkpoints inline (small): for the Redis store, the snapshots each run of it committed. */
interface DedupeState {
  /** Run epoch → the last snapshot it committed and when (epoch ms), for runs whose keys may still live. */
  epochs?: EpochRecord;
}

export function createDedupe(options: DedupeOptions, ctx: OperatorContext): Transform {
  return options.store === 'redis' ? new RedisDedupe(options, ctx) : new MemoryDedupe(options, ctx);
}

abstract class DedupeBase implements Transform {
  protected readonly keyOf: KeyOf;
  protected readonly windowMs: number;
  protected readonly eventTime: boolean;
  protected readonly dropped: { inc(value?: number): void };
  protected readonly unchecked: { inc(value?: number): void };
  private lastUncheckedWarning = 0;
  /** This run's figures for the summary, counted once a batch has succeeded. */
  private totals = { records: 0, dropped: 0, unchecked: 0 };
  protected readonly options: DedupeOptions;
  protected readonly ctx: OperatorContext;

  constructor(options: DedupeOptions, ctx: OperatorContext) {
    this.options = options;
    this.ctx = ctx;
    this.keyOf = keyFunction(options.fields);
    this.windowMs = Math.max(1, Math.round(options.window_seconds * 1000));
    this.eventTime = options.time === 'event';
    this.dropped = ctx.metrics.counter('etl_dedupe_dropped_total', 'Duplicate records dropped');
    this.unchecked = ctx.metrics.counter(
      'etl_dedupe_unchecked_total',
      'Records let through unchecked because the store was full or down (on_store_unavailable: pass)',
    );
  }

  abstract process(records: EtlRecord[]): Promise<PortRecords>;

  /** Counts a batch that succeeded: `records` in, `dropped` of them dropped, `unchecked` passed unchecked. */
  protected counted(records: number, dropped: number, unchecked: number): void {
    this.totals.records += records;
    this.totals.dropped += dropped;
    this.totals.unchecked += unchecked;
    if (dropped > 0) this.dropped.inc(dropped);
  }

  summarize(): StageReport {
    const { records, dropped, unchecked } = this.totals;
    const share = records === 0 ? 0 : (dropped / records) * 100;
    const lines = [
      `${dropped.toLocaleString('en')} duplicates dropped of ${records.toLocaleString('en')} records (${share.toFixed(2)}%)`,
    ];
    if (unchecked > 0) {
      lines.push(
        `${unchecked.toLocaleString('en')} passed unchecked (the store was full or down; on_store_unavailable: pass)`,
      );
    }
    return { lines };
  }

  /** Records passed unchecked: counted, and said at most every 10 s. */
  protected passUnchecked(count: number, why: string): void {
    this.unchecked.inc(count);
    const now = Date.now();
    if (now - this.lastUncheckedWarning < 10_000) return;
    this.lastUncheckedWarning = now;
    this.ctx.logger.warn(`dedupe ${this.ctx.id}: ${why}; records pass unchecked (on_store_unavailable: pass)`);
  }
}

// ------------------------------------------------------------------------------------------- memory

class MemoryDedupe extends DedupeBase {
  private readonly seen: KeyedState<number>;
  /** Keys in the order they were set, with the time set, for expiry; stale entries are skipped. */
  private queueKeys: string[] = [];
  private queueTimes: number[] = [];
  private head = 0;
  private readonly keysGauge: { set(value: number): void };

  constructor(options: DedupeOptions, ctx: OperatorContext) {
    super(options, ctx);
    this.seen = ctx.keyed<number>('seen');
    this.keysGauge = ctx.metrics.gauge('etl_dedupe_keys', 'Keys the memory store holds');
  }

  restore(): void {
    // Keyed state is restored by now: rebuild the expiry queue from it, oldest first.
    const entries = [...this.seen.entries()].sort((a, b) => a[1] - b[1]);
    this.queueKeys = entries.map((e) => e[0]);
    this.queueTimes = entries.map((e) => e[1]);
    this.head = 0;
  }

  async process(records: EtlRecord[]): Promise<PortRecords> {
    const now = Date.now();
    const out: EtlRecord[] = [];
    const dead: EtlRecord[] = [];
    const staged = new Map<string, number>();
    let added = 0;
    let dropped = 0;
    let unchecked = 0;
    for (const record of records) {
      const time = this.eventTime ? eventTimeOf(record[this.options.time_field]) : now;
      if (Number.isNaN(time)) {
        dead.push(
          deadLetter(record, this.ctx.id, `no event time in \`${this.options.time_field}\` (time: event)`, now),
        );
        continue;
      }
      const key = this.keyOf(record);
      const first = staged.get(key) ?? this.seen.get(key);
      if (first !== undefined && Math.abs(time - first) < this.windowMs) {
        dropped++;
        continue;
      }
      if (first === undefined && this.seen.size + added >= this.options.max_keys) {
        if (this.options.on_store_unavailable === 'pass') {
          unchecked++;
          out.push(record);
          continue;
        }
        if (this.options.on_store_unavailable === 'fail') {
          throw new EtlError(
            'ETL_RUN_STAGE_FAILED',
            `dedupe ${this.ctx.id}: the memory store is full (max_keys ${this.options.max_keys}, window ` +
              `${this.options.window_seconds} s); raise max_keys or shorten the window`,
            { retriable: true },
          );
        }
        await this.makeRoom(added);
      }
      // An occurrence before the remembered one (event time) keeps the later time: both windows count.
      staged.set(key, first === undefined ? time : Math.max(first, time));
      if (first === undefined) added++;
      out.push(record);
    }
    // Nothing can fail from here on: apply the batch's changes.
    for (const [key, time] of staged) {
      this.seen.set(key, time);
      this.queueKeys.push(key);
      this.queueTimes.push(time);
    }
    this.counted(records.length, dropped, unchecked);
    if (unchecked > 0) this.passUnchecked(unchecked, `the memory store is full (max_keys ${this.options.max_keys})`);
    this.keysGauge.set(this.seen.size);
    return dead.length > 0 ? { default: out, dead_letter: dead } : { default: out };
  }

  tick(now: number): PortRecords {
    const until = this.eventTime ? this.ctx.watermark() : now;
    if (until !== undefined) this.expire(until);
    this.keysGauge.set(this.seen.size);
    return {};
  }

  snapshot(): DedupeState {
    return {};
  }

  /** on_store_unavailable: wait (processing time): holds the batch until the oldest key expires. */
  private async makeRoom(added: number): Promise<void> {
    let warned = false;
    for (;;) {
      this.expire(Date.now());
      if (this.seen.size + added < this.options.max_keys) return;
      const oldest = this.oldest();
      if (oldest === undefined) {
        // Every key held is one this very batch adds: no expiry can make room before the batch ends.
        throw new EtlError(
          'ETL_RUN_STAGE_FAILED',
          `dedupe ${this.ctx.id}: one batch holds more new keys than max_keys (${this.options.max_keys})`,
        );
      }
      if (!warned) {
        warned = true;
        this.ctx.logger.warn(
          `dedupe ${this.ctx.id}: the memory store is full (max_keys ${this.options.max_keys}); waiting for ` +
            'keys to expire (on_store_unavailable: wait)',
        );
      }
      await sleep(Math.max(1, oldest + this.windowMs - Date.now()), this.ctx.signal);
    }
  }

  /** Time of the oldest live key in the queue. */
  private oldest(): number | undefined {
    for (let i = this.head; i < this.queueKeys.length; i++) {
      const key = this.queueKeys[i] as string;
      if (this.seen.get(key) === this.queueTimes[i]) return this.queueTimes[i];
    }
    return undefined;
  }

  /** Forgets keys whose window ended at `until`. */
  private expire(until: number): void {
    while (this.head < this.queueKeys.length) {
      const key = this.queueKeys[this.head] as string;
      const time = this.queueTimes[this.head] as number;
      const current = this.seen.get(key);
      if (current === time) {
        if (time + this.windowMs > until) break;
        this.seen.delete(key);
      }
      this.head++;
    }
    if (this.head > 4096 && this.head * 2 > this.queueKeys.length) {
      this.queueKeys = this.queueKeys.slice(this.head);
      this.queueTimes = this.queueTimes.slice(this.head);
      this.head = 0;
    }
  }
}

// -------------------------------------------------------------------------------------------- redis

/** The value of a dedupe key in Redis: who wrote it (operators/shared/run-marker.ts). */
class RedisDedupe extends DedupeBase {
  private client: Redis | undefined;
  private instance = '';
  private batch = 0;
  /** Why the last batch passed unchecked. */
  private unavailable = '';
  /** This run and the earlier runs of this stage on this instance: the last snapshot each committed. */
  private readonly epochs = new Epochs();
  private readonly prefix: string;
  /**
   * Keys this run set in Redis, each until a little before Redis expires it. Redis would answer that such a
   * key was seen (this run's, from an earlier batch: `counts`), so its repeats are dropped without asking.
   * Bounded by `local_cache_keys` (recent-keys.ts); the keys of other instances are not in it.
   */
  private readonly setByThisRun: RecentKeys | undefined;
  /** How long an entry of `setByThisRun` holds, from before its key was sent. */
  private readonly cacheMs: number;

  constructor(options: DedupeOptions, ctx: OperatorContext) {
    super(options, ctx);
    this.prefix = `dedupe:${ctx.pipeline}/${ctx.id}:`;
    // A margin before the window ends, for the difference between this clock and the Redis server's (which
    // expires the key).
    this.cacheMs = this.windowMs - Math.min(1000, Math.max(1, Math.floor(this.windowMs / 10)));
    this.setByThisRun =
      options.local_cache_keys > 0 && this.cacheMs > 0 ? new RecentKeys(options.local_cache_keys) : undefined;
  }

  async open(): Promise<void> {
    this.client = this.ctx.resource<Redis>(this.options.redis as string);
    // One id per pipeline stage and data directory, so that keys this instance wrote in runs that crashed are
    // told from keys other instances sharing the server wrote.
    this.instance = instanceId(this.ctx.dataDir, 'dedupe', this.ctx.id);
  }

  restore(state: unknown): void {
    this.epochs.restore((state as DedupeState | undefined)?.epochs);
  }

  snapshot(snapshot: { id: number }): DedupeState {
    // A run whose last commit is more than a window old has no key left (with a margin for clock skew).
    return { epochs: this.epochs.snapshot(snapshot.id, 2 * this.windowMs + 60_000) };
  }

  async process(records: EtlRecord[]): Promise<PortRecords> {
    const marker = formatMarker({
      instance: this.instance,
      epoch: this.epochs.current,
      snapshot: this.ctx.snapshotId(),
      batch: this.batch,
    });
    // Chunks of keys go to Redis as soon as they are full, so that the server works on one while the next is
    // hashed (while connected: otherwise `ask` decides what to do first).
    const early: SentChunks | undefined =
      (this.client as Redis).status === 'ready' ? { sentAt: performance.now(), replies: [] } : undefined;
    // The first record of each key in the batch that must be asked of Redis (`keys[i]` is `firsts[i]`'s); the
    // others are duplicates whatever Redis says: a repeat within the batch, or a key this run set in an earlier
    // batch (see `setByThisRun`).
    const keys: string[] = [];
    const firsts: EtlRecord[] = [];
    const inBatch = new Set<string>();
    const recent = this.setByThisRun;
    let dropped = 0;
    for (const record of records) {
      const key = this.keyOf(record);
      // The cache first: a hit there spares the look-up in the batch's own set.
      if (recent?.has(key) || inBatch.has(key)) {
        dropped++;
        continue;
      }
      inBatch.add(key);
      keys.push(key);
      firsts.push(record);
      if (early !== undefined && keys.length % CHUNK === 0) {
        early.replies.push(this.send(keys.slice(keys.length - CHUNK), marker));
      }
    }
    const answer = keys.length === 0 ? { seen: [], sentAt: 0 } : await this.ask(keys, marker, early);
    let out: EtlRecord[];
    if (answer === undefined) {
      out = firsts;
      this.passUnchecked(out.length, `Redis is unavailable (${this.unavailable})`);
    } else {
      out = [];
      // This run set the keys not seen, no earlier than `sentAt`: Redis holds each a window from then at least.
      const until = answer.sentAt + this.cacheMs;
      for (let i = 0; i < firsts.length; i++) {
        if (answer.seen[i] === true) {
          dropped++;
          continue;
        }
        out.push(firsts[i] as EtlRecord);
        recent?.add(keys[i] as string, until);
      }
    }
    this.batch++;
    this.counted(records.length, dropped, answer === undefined ? out.length : 0);
    // Records leave in their order: `firsts` keeps the order of first occurrences.
    return { default: out };
  }

  /**
   * `SET key marker PX window NX GET` for each key of `chunk`, run by a script: one command per chunk instead of
   * one per key costs the client a sixth of the CPU (bench/dedupe.ts). Resolves to what each key held (null:
   * nothing). (The keys of a chunk must share a slot on a Redis Cluster: not supported.)
   */
  private send(chunk: string[], marker: string): Promise<unknown> {
    const keys = chunk.map((key) => this.prefix + key);
    const reply = (this.client as Redis).eval(SET_NX_GET, keys.length, ...keys, marker, this.windowMs);
    // Awaited by `ask`, unless the batch fails before: not an unhandled rejection then.
    reply.catch(() => {});
    return reply;
  }

  /**
   * The keys seen already, and a time no later than when the others were set (performance.now()); undefined
   * when Redis is down and the records pass unchecked. `early` holds the replies to the first chunks of `keys`,
   * sent while the batch was read; the first attempt uses them.
   */
  private async ask(keys: string[], marker: string, early: SentChunks | undefined): Promise<Answer | undefined> {
    let sent = early;
    const roundTrip = async (): Promise<Answer> => {
      const { sentAt, replies } = sent ?? { sentAt: performance.now(), replies: [] };
      sent = undefined;
      for (let at = replies.length * CHUNK; at < keys.length; at += CHUNK) {
        replies.push(this.send(keys.slice(at, at + CHUNK), marker));
      }
      const seen: boolean[] = [];
      const retake: string[] = [];
      let i = 0;
      for (const reply of await Promise.all(replies)) {
        for (const value of reply as unknown[]) {
          const key = keys[i] as string;
          if (value === null) seen.push(false);
          else if (this.counts(parseMarker(String(value)))) seen.push(true);
          else {
            seen.push(false);
            retake.push(key);
          }
          i++;
        }
      }
      if (retake.length > 0) {
        // Written by a snapshot that never committed: the key is this record's now.
        const client = this.client as Redis;
        const overwrite = client.pipeline();
        for (const key of retake) overwrite.set(this.prefix + key, marker, 'PX', this.windowMs);
        await execute(overwrite);
      }
      return { seen, sentAt };
    };
    const timeoutMs = this.options.timeout_seconds * 1000;
    if (this.options.on_store_unavailable === 'wait') {
      return retry(() => withWarning(roundTrip(), timeoutMs, () => this.warnWaiting()), {
        policy: { max_attempts: Number.POSITIVE_INFINITY, initial_backoff_ms: 100, max_backoff_ms: 5000 },
        signal: this.ctx.signal,
        retriable: () => true,
        onRetry: (error) => this.ctx.logger.warn(`dedupe ${this.ctx.id}: Redis failed: ${errorMessage(error)}`),
      });
    }
    try {
      // Not connected: decided at once, and nothing is queued in the client for a server that may stay away.
      const client = this.client as Redis;
      if (client.status !== 'ready') throw new Error(`not connected (${client.status})`);
      return await withTimeout(roundTrip(), timeoutMs);
    } catch (error) {
      const reason = errorMessage(error);
      if (this.options.on_store_unavailable === 'pass') {
        this.unavailable = reason;
        return undefined;
      }
      throw new EtlError(
        'ETL_RUN_STAGE_FAILED',
        `dedupe ${this.ctx.id}: Redis is unavailable (${reason}; on_store_unavailable: fail)`,
        { retriable: true, cause: error },
      );
    }
  }

  private warnWaiting(): void {
    this.ctx.logger.warn(
      `dedupe ${this.ctx.id}: Redis has not answered for ${this.options.timeout_seconds} s; waiting ` +
        '(on_store_unavailable: wait)',
    );
  }

  /** Whether a key holding `marker` counts as seen. */
  private counts(marker: Marker | undefined): boolean {
    // Another instance's key (or a value not of ours) counts: that instance passed the record.
    if (marker === undefined || marker.instance !== this.instance) return true;
    // This run's: seen unless written by an earlier attempt at this very batch.
    if (marker.epoch === this.epochs.current) return marker.batch !== this.batch;
    // An earlier run's: seen if its snapshot committed; a run that crashed before committing it wrote it for
    // records that are being replayed now.
    const committed = this.epochs.lastCommitted(marker.epoch);
    return committed !== undefined && marker.snapshot <= committed;
  }
}

/** Chunks of a batch's keys sent to Redis while the batch was read: when, and their replies. */
interface SentChunks {
  sentAt: number;
  replies: Promise<unknown>[];
}

/** Redis's answer for a batch: for each key, whether it was seen already; the others were set no earlier than
 * `sentAt`. */
interface Answer {
  seen: boolean[];
  sentAt: number;
}

/** Keys per script call. */
const CHUNK = 256;

/** For each key: SET it NX with the marker and the window, and return what it held (false: nothing). */
const SET_NX_GET = `local previous = {}
for i, key in ipairs(KEYS) do
  previous[i] = redis.call('SET', key, ARGV[1], 'PX', ARGV[2], 'NX', 'GET')
end
return previous`;

/** Runs a pipeline; fails if any command failed. */
async function execute(pipeline: ChainableCommander): Promise<unknown[]> {
  const results = (await pipeline.exec()) ?? [];
  return results.map(([error, value]) => {
    if (error) throw error;
    return value;
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

function withWarning<T>(promise: Promise<T>, ms: number, warn: () => void): Promise<T> {
  const timer = setTimeout(warn, ms);
  return promise.finally(() => clearTimeout(timer));
}
