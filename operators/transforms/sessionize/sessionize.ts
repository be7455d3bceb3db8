/**
 * Sessions per key over event time. Every decision is a function of the records and their order only, never of
 * processing time or batch boundaries, so that a rerun after a crash (state restored at the committed cut, the
 * records after it read again, in other batches) assigns exactly the ids an uninterrupted run does:
 *
 * - the clock is the greatest event time this stage has seen (checkpointed), not the engine's watermark, which
 *   moves with processing time (idle sources) and starts afresh on a restart;
 * - a session's id is a hash of its key and its start event time;
 * - sessions that can no longer grow (last + gap before clock − max_out_of_order) are dropped on ticks; dropping
 *   them changes no output, since any record of their key that is not late starts a new session anyway;
 * - eviction past `max_sessions` happens when a session starts, and picks the least recently active live
 *   sessions (by last event time, then key).
 */
import { hash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type {
  KeyedState,
  OperatorContext,
  PortRecords,
  Snapshot,
  StageReport,
  Transform,
} from '../../../engine/operator.ts';
import { type EtlRecord, eventTimeOf } from '../../../engine/record.ts';
import { type FieldReader, fieldReader, keyOf } from '../../shared/fields.ts';
import { type EpochRecord, Epochs, instanceId } from '../../shared/run-marker.ts';
import { type Placement, RedisSessions } from './redis-sessions.ts';
import type { SessionizeOptions } from './schema.ts';

/** A key's current session: start and last event time (epoch ms), and the records it has had. */
type Session = [start: number, last: number, seq: number];

interface Saved {
  readonly clock: number | null;
  /** With `store: redis`: the runs of this stage instance and what each committed. */
  readonly epochs?: EpochRecord;
}

/**
 * The session's id: 128 bits of SHA-256 over the key and the start time, hex. One-shot `hash`, not a Hash object:
 * the same digest at 0.6 µs instead of 1.2–1.5 µs, and it runs for every record.
 */
export function sessionId(key: string, start: number): string {
  return hash('sha256', `${key}\n${start}`, 'hex').slice(0, 32);
}

const count = new Intl.NumberFormat('en-US');
const share = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1, roundingMode: 'floor' });

export class SessionizeTransform implements Transform {
  private readonly keys: readonly FieldReader[];
  private readonly time: FieldReader;
  private readonly gapMs: number;
  private readonly boundMs: number;
  private readonly max: number;
  private readonly sessions: KeyedState<Session>;
  /** The greatest event time seen; -Infinity before the first. */
  private clock = Number.NEGATIVE_INFINITY;
  /** The clock at the last sweep of ended sessions. */
  private sweptAt = Number.NEGATIVE_INFINITY;
  private warnedLate = false;
  /** This run's totals, for the summary (the counters hold the same, but are not read back). */
  private seen = 0;
  private lateTotal = 0;
  private untimedTotal = 0;
  private readonly boundSeconds: number;
  private readonly ctx: OperatorContext;
  private readonly late: { inc(value?: number): void };
  private readonly untimed: { inc(value?: number): void };
  private readonly evicted: { inc(value?: number): void };
  private readonly openGauge: { set(value: number): void };
  private readonly options: SessionizeOptions;
  /** With `store: redis`: the shared store, made at `open`, and this instance's runs. */
  private redis: RedisSessions | undefined;
  private readonly epochs = new Epochs();
  private batch = 0;
  /** The two-phase hook: with `store: redis` the stage must know which of its snapshots committed. */
  commit?: (snapshot: Snapshot) => Promise<void>;

  constructor(options: SessionizeOptions, ctx: OperatorContext) {
    this.ctx = ctx;
    this.options = options;
    if (options.store === 'redis') {
      this.commit = async (snapshot) => this.epochs.committed(snapshot.id);
    }
    this.keys = options.key_fields.map(fieldReader);
    this.time = fieldReader(options.time_field);
    this.gapMs = options.gap_seconds * 1000;
    this.boundMs = options.max_out_of_order_seconds * 1000;
    this.boundSeconds = options.max_out_of_order_seconds;
    this.max = options.max_sessions;
    this.sessions = ctx.keyed<Session>('sessions');
    this.late = ctx.metrics.counter(
      'etl_sessionize_late_records_total',
      'Records older than max_out_of_order_seconds behind the greatest event time seen, passed on without a session',
    );
    this.untimed = ctx.metrics.counter(
      'etl_sessionize_untimed_records_total',
      'Records whose time field holds no time, passed on without a session',
    );
    this.evicted = ctx.metrics.counter(
      'etl_sessionize_evicted_sessions_total',
      'Open sessions evicted because max_sessions was reached',
    );
    this.openGauge = ctx.metrics.gauge('etl_sessionize_open_sessions', 'Sessions held in state');
  }

  async open(): Promise<void> {
    if (this.options.store !== 'redis') return;
    this.redis = new RedisSessions({
      client: this.ctx.resource<Redis>(this.options.redis as string),
      prefix: `session:${this.ctx.pipeline}/${this.ctx.id}:`,
      gapMs: this.gapMs,
      boundMs: this.boundMs,
      instance: instanceId(this.ctx.dataDir, 'sessionize', this.ctx.id),
      epochs: this.epochs,
      logger: this.ctx.logger,
      signal: this.ctx.signal,
    });
  }

  process(records: EtlRecord[]): PortRecords | Promise<PortRecords> {
    return this.redis ? this.processShared(records, this.redis) : this.processInMemory(records);
  }

  /** As in memory, but each key's session is read and written in Redis, for the whole batch in one round trip. */
  private async processShared(records: EtlRecord[], redis: RedisSessions): Promise<PortRecords> {
    const out = new Array<EtlRecord>(records.length);
    const placements: Placement[] = [];
    const indices: number[] = [];
    let late = 0;
    let untimed = 0;
    for (let i = 0; i < records.length; i++) {
      const record = records[i] as EtlRecord;
      const t = eventTimeOf(this.time(record));
      if (Number.isNaN(t) || t < this.clock - this.boundMs) {
        if (Number.isNaN(t)) untimed++;
        else late++;
        record.session_id = null;
        record.session_seq = null;
        record.session_start = null;
        out[i] = record;
        continue;
      }
      if (t > this.clock) this.clock = t;
      placements.push({ key: keyOf(this.keys, record), time: t });
      indices.push(i);
    }
    const batch = this.batch++;
    const placed = placements.length > 0 ? await redis.place(placements, this.ctx.snapshotId(), batch) : [];
    placed.forEach(([start, seq], j) => {
      const i = indices[j] as number;
      const record = records[i] as EtlRecord;
      record.session_id = sessionId((placements[j] as Placement).key, start);
      record.session_seq = seq;
      record.session_start = new Date(start).toISOString();
      out[i] = record;
    });
    this.counted(records.length, late, untimed);
    return { default: out };
  }

  private processInMemory(records: EtlRecord[]): PortRecords {
    const out = new Array<EtlRecord>(records.length);
    let late = 0;
    let untimed = 0;
    for (let i = 0; i < records.length; i++) {
      const record = records[i] as EtlRecord;
      const t = eventTimeOf(this.time(record));
      if (Number.isNaN(t) || t < this.clock - this.boundMs) {
        if (Number.isNaN(t)) untimed++;
        else late++;
        record.session_id = null;
        record.session_seq = null;
        record.session_start = null;
        out[i] = record;
        continue;
      }
      if (t > this.clock) this.clock = t;
      const key = keyOf(this.keys, record);
      let session = this.sessions.get(key);
      if (session !== undefined && t <= session[1] + this.gapMs) {
        // Within the gap of the key's session (also a record a little out of order): it joins it.
        session = [session[0], Math.max(session[1], t), session[2] + 1];
      } else {
        if (session === undefined || this.ended(session)) this.makeRoom();
        session = [t, t, 1];
      }
      this.sessions.set(key, session);
      record.session_id = sessionId(key, session[0]);
      record.session_seq = session[2];
      record.session_start = new Date(session[0]).toISOString();
      out[i] = record;
    }
    this.counted(records.length, late, untimed);
    this.openGauge.set(this.sessions.size);
    return { default: out };
  }

  private counted(seen: number, late: number, untimed: number): void {
    this.seen += seen;
    if (late > 0) this.noteLate(late);
    if (untimed > 0) {
      this.untimed.inc(untimed);
      this.untimedTotal += untimed;
    }
  }

  /** Drops ended sessions once the clock has moved on by a tenth of the gap since the last sweep. */
  tick(): PortRecords {
    if (this.clock - this.sweptAt >= this.gapMs / 10) {
      this.sweep();
      this.openGauge.set(this.sessions.size);
    }
    return {};
  }

  snapshot(snapshot: Snapshot): Saved {
    const clock = Number.isFinite(this.clock) ? this.clock : null;
    if (!this.redis) return { clock };
    // A run's keys live at most a TTL after its last write: older runs need not be remembered.
    return { clock, epochs: this.epochs.snapshot(snapshot.id, 2 * (this.gapMs + this.boundMs) + 120_000) };
  }

  restore(state: unknown): void {
    const saved = state as Saved | undefined;
    this.epochs.restore(saved?.epochs);
    this.clock = saved?.clock ?? Number.NEGATIVE_INFINITY;
    this.sweptAt = Number.NEGATIVE_INFINITY;
    this.openGauge.set(this.sessions.size);
  }

  /** A session no record that is not late can join any more. */
  private ended(session: Session): boolean {
    return session[1] + this.gapMs < this.clock - this.boundMs;
  }

  private sweep(): void {
    const ended: string[] = [];
    for (const [key, session] of this.sessions.entries()) if (this.ended(session)) ended.push(key);
    for (const key of ended) this.sessions.delete(key);
    this.sweptAt = this.clock;
  }

  /**
   * Before a session starts for a key without a live one: when the live sessions fill `max_sessions`, the least
   * recently active tenth of them goes (so that the sort is paid once per tenth, not once per session).
   */
  private makeRoom(): void {
    if (this.sessions.size < this.max) return;
    this.sweep();
    if (this.sessions.size < this.max) return;
    const target = this.max - Math.max(1, Math.floor(this.max / 10));
    const byActivity = [...this.sessions.entries()].sort((a, b) => a[1][1] - b[1][1] || (a[0] < b[0] ? -1 : 1));
    const count = this.sessions.size - target;
    for (let i = 0; i < count; i++) this.sessions.delete((byActivity[i] as [string, Session])[0]);
    this.evicted.inc(count);
    this.ctx.logger.warn(`max_sessions (${this.max}) reached: evicted the ${count} least recently active sessions`, {
      evicted: count,
    });
  }

  /**
   * The run's totals of records passed on without a session, and why: the warning while running is logged once,
   * at the first late batch, so its count is not the total.
   */
  summarize(): StageReport | undefined {
    const unplaced = this.lateTotal + this.untimedTotal;
    if (this.seen === 0) return undefined;
    if (unplaced === 0) return { lines: [`every record placed in a session (${count.format(this.seen)})`] };
    const lines = [
      `${count.format(unplaced)} of ${count.format(this.seen)} records (${share.format((unplaced / this.seen) * 100)}%) got no session (null session fields)`,
    ];
    if (this.lateTotal > 0) {
      lines.push(
        `${count.format(this.lateTotal)} arrived more than max_out_of_order_seconds (${this.boundSeconds}) behind ` +
          'the greatest event time seen: the stage has one clock over all its input, so files read one after the ' +
          'other whose times overlap (several servers, or rotated files read newest first) make most of them late; ' +
          "raise max_out_of_order_seconds to cover the overlap, or give each server's files their own source and sessionize stage",
      );
    }
    if (this.untimedTotal > 0) lines.push(`${count.format(this.untimedTotal)} had no event time in their time field`);
    return { lines };
  }

  private noteLate(late: number): void {
    this.late.inc(late);
    this.lateTotal += late;
    if (this.warnedLate) return;
    this.warnedLate = true;
    this.ctx.logger.warn(
      `records began to arrive more than max_out_of_order_seconds behind the greatest event time seen (${late} in ` +
        'this batch); they pass on with null session fields (counted in etl_sessionize_late_records_total; the ' +
        'run summary gives the total; warned once per run)',
    );
  }
}
