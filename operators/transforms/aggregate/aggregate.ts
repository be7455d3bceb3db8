/**
 * Windows on event time. A record counts in the window(s) its event time falls in, per group. A window is
 * emitted (one record per group) once the watermark passes its end — on a batch, or on a tick while no record
 * arrives — and kept `allowed_lateness_seconds` longer: a late record within that time updates it and its group
 * is emitted again, so a rollup table with `on_conflict: update` holds the corrected row. After that the window
 * is dropped, and a record for it goes to dead_letter.
 *
 * State: each group of each open window is a key of keyed state, written at the checkpoint cut for the groups
 * changed since the last one (sketches are serialised there, not per record). Inline state: the watermark up
 * to which windows were emitted, so that a rerun neither emits a closed window again as if new nor reopens it.
 */
import type { KeyedState, OperatorContext, PortRecords, Transform } from '../../../engine/operator.ts';
import { deadLetter, type EtlRecord, eventTimeOf } from '../../../engine/record.ts';
import { Accumulator, type AccumulatorState, type Plan, planOf } from './accumulate.ts';
import type { AggregateOptions, AggregateSpec } from './schema.ts';

interface Group {
  /** Its window's start. */
  readonly start: number;
  readonly key: string;
  readonly values: readonly unknown[];
  readonly acc: Accumulator;
  /** Changed since it was last emitted. */
  dirty: boolean;
  /** Changed since the last cut (listed in `pending`). */
  pending: boolean;
}

interface Window {
  readonly start: number;
  readonly startText: string;
  readonly endText: string;
  /** By group key; with one group_by field, groups whose value is a text are in `texts` instead, by the text. */
  readonly groups: Map<string, Group>;
  readonly texts: Map<string, Group>;
}

interface StoredGroup {
  /** Window start, epoch milliseconds. */
  readonly w: number;
  /** The group-by values. */
  readonly g: readonly unknown[];
  readonly a: AccumulatorState;
  /**
   * Emitted as it stands (not changed since): a rerun emits it again only if a record changes it. Absent in state
   * written before it existed: then a group counts as emitted when its window ended before `closed`.
   */
  readonly e?: boolean;
}

interface InlineState {
  /** Windows ending at or before it have been emitted. */
  readonly closed: number | null;
  /** The options the state was made with (windows, groups, aggregates): other ones cannot read it. */
  readonly shape?: string;
}

export class AggregateTransform implements Transform {
  readonly tickIntervalMs = 1000;
  private readonly plan: Plan;
  private readonly sizeMs: number;
  private readonly slideMs: number;
  private readonly latenessMs: number;
  private readonly timeField: string;
  private readonly groupBy: readonly string[];
  private readonly top: { readonly n: number; readonly by: string } | undefined;
  private readonly shape: string;
  private readonly windows = new Map<number, Window>();
  /** Groups changed since the last cut, and keys (`<start>|<group>`) of groups dropped: written at the next. */
  private pending: Group[] = [];
  private removed: string[] = [];
  private readonly state: KeyedState<StoredGroup>;
  /** The watermark up to which windows were emitted (epoch ms). */
  private closed = Number.NEGATIVE_INFINITY;
  private readonly tooLate: { inc(value?: number): void };

  private readonly ctx: OperatorContext;

  constructor(options: AggregateOptions, ctx: OperatorContext) {
    this.ctx = ctx;
    this.plan = planOf(options.aggregates as Record<string, AggregateSpec>);
    this.sizeMs = options.window_seconds * 1000;
    this.slideMs = (options.slide_seconds ?? options.window_seconds) * 1000;
    this.latenessMs = options.allowed_lateness_seconds * 1000;
    this.timeField = options.time_field;
    this.groupBy = options.group_by;
    this.top = options.top;
    this.shape = JSON.stringify({
      window_seconds: options.window_seconds,
      slide_seconds: options.slide_seconds ?? null,
      time_field: options.time_field,
      group_by: options.group_by,
      aggregates: options.aggregates,
    });
    this.state = ctx.keyed<StoredGroup>('groups');
    this.tooLate = ctx.metrics.counter(
      'etl_aggregate_too_late_records_total',
      'Records that came after their windows were dropped (past allowed_lateness_seconds), sent to dead_letter.',
    );
  }

  restore(state: unknown): void {
    const inline = state as InlineState | undefined;
    if (inline?.shape !== undefined && inline.shape !== this.shape) {
      throw new Error(
        `the state of aggregate ${this.ctx.id} was made with other window_seconds, slide_seconds, time_field, ` +
          `group_by or aggregates (${inline.shape}) and cannot be read with these: rerun with --forget ` +
          `${this.ctx.id} to drop its open windows (the rows they emitted stay), or --reset to start over`,
      );
    }
    const closed = inline?.closed;
    this.closed = typeof closed === 'number' ? closed : Number.NEGATIVE_INFINITY;
    for (const [key, stored] of this.state.entries()) {
      const window = this.windowAt(stored.w);
      const groupKey = key.slice(key.indexOf('|') + 1);
      const byText = this.groupBy.length === 1 && groupKey.startsWith('"');
      (byText ? window.texts : window.groups).set(byText ? groupKey.slice(1) : groupKey, {
        start: stored.w,
        key: groupKey,
        values: stored.g,
        acc: Accumulator.fromState(this.plan, stored.a),
        // A group not emitted as it stands is emitted when its window closes (again, if it had been).
        dirty: stored.e === undefined ? stored.w + this.sizeMs > this.closed : !stored.e,
        pending: false,
      });
    }
  }

  snapshot(): InlineState {
    for (const key of this.removed) this.state.delete(key);
    for (const group of this.pending) {
      if (!group.pending) continue; // dropped since
      this.state.set(`${group.start}|${group.key}`, {
        w: group.start,
        g: group.values,
        a: group.acc.toState(),
        e: !group.dirty,
      });
      group.pending = false;
    }
    this.pending = [];
    this.removed = [];
    return { closed: Number.isFinite(this.closed) ? this.closed : null, shape: this.shape };
  }

  process(records: EtlRecord[]): PortRecords {
    // A record is too late by the watermark before its batch: the runtime's has seen the batch already, and a
    // batch of in-order records spanning an hour would otherwise drop all but its last minutes.
    const before = this.closed;
    const rejected: EtlRecord[] = [];
    const values: unknown[] = new Array(this.groupBy.length);
    let lastStamp: unknown;
    let lastTime = Number.NaN;
    const single = this.groupBy.length === 1 ? (this.groupBy[0] as string) : undefined;
    let window: Window | undefined;
    for (const record of records) {
      const stamp = record[this.timeField];
      // Records of one second share their time text: parse it once.
      if (stamp !== lastStamp || typeof stamp !== 'string') {
        lastStamp = stamp;
        lastTime = eventTimeOf(stamp);
      }
      const time = lastTime;
      if (Number.isNaN(time)) {
        rejected.push(
          deadLetter(
            record,
            this.ctx.id,
            `no event time in \`${this.timeField}\` (ISO-8601 text or epoch milliseconds)`,
          ),
        );
        continue;
      }
      let groupKey = '';
      // One group_by field holding a text (the common case): the text itself looks the group up.
      let text: string | undefined;
      if (single !== undefined) {
        const value = record[single] ?? null;
        values[0] = value;
        if (typeof value === 'string') text = value;
        else groupKey = JSON.stringify(value);
      } else if (this.groupBy.length > 0) {
        for (let i = 0; i < this.groupBy.length; i++) values[i] = record[this.groupBy[i] as string] ?? null;
        groupKey = JSON.stringify(values);
      }
      let counted = false;
      // Every window holding `time`: the latest starts at the slide boundary at or before it.
      for (
        let start = Math.floor(time / this.slideMs) * this.slideMs;
        start > time - this.sizeMs;
        start -= this.slideMs
      ) {
        if (start + this.sizeMs + this.latenessMs <= before) break; // this one and earlier ones are gone
        if (window === undefined || window.start !== start) window = this.windowAt(start);
        let group = text === undefined ? window.groups.get(groupKey) : window.texts.get(text);
        if (!group) {
          group = {
            start,
            // A text as itself after a quote, anything else as JSON: distinct values, distinct keys.
            key: text === undefined ? groupKey : `"${text}`,
            values: values.slice(),
            acc: new Accumulator(this.plan),
            dirty: true,
            pending: false,
          };
          if (text === undefined) window.groups.set(groupKey, group);
          else window.texts.set(text, group);
        }
        group.acc.add(this.plan, record);
        group.dirty = true;
        if (!group.pending) {
          group.pending = true;
          this.pending.push(group);
        }
        counted = true;
      }
      if (!counted) {
        this.tooLate.inc();
        rejected.push(
          deadLetter(
            record,
            this.ctx.id,
            `too late: event time ${new Date(time).toISOString()} is before the watermark ` +
              `${new Date(before).toISOString()} by more than allowed_lateness_seconds, and its windows were dropped ` +
              '(a larger settings.watermark_lateness_seconds or allowed_lateness_seconds keeps them open longer)',
          ),
        );
      }
    }
    const out = this.advance(this.watermark(), false);
    return rejected.length > 0 ? { default: out, dead_letter: rejected } : { default: out };
  }

  tick(): PortRecords {
    return { default: this.advance(this.watermark(), false) };
  }

  /** The end of the input: every window is emitted (and kept, for records a later run may add). */
  flush(): PortRecords {
    return { default: this.advance(Number.POSITIVE_INFINITY, true) };
  }

  /** The stage's watermark, never going back (it is not checkpointed by the runtime; `closed` is). */
  private watermark(): number {
    const now = this.ctx.watermark();
    return now === undefined ? this.closed : Math.max(now, this.closed);
  }

  private windowAt(start: number): Window {
    let window = this.windows.get(start);
    if (!window) {
      const endText = new Date(start + this.sizeMs).toISOString();
      window = { start, startText: new Date(start).toISOString(), endText, groups: new Map(), texts: new Map() };
      this.windows.set(start, window);
    }
    return window;
  }

  /**
   * Emits the windows the watermark has passed the end of (their changed groups, for those emitted before) and
   * drops those past the allowed lateness. `end`: the input ended; emit every window, drop none.
   */
  private advance(watermark: number, end: boolean): EtlRecord[] {
    const out: EtlRecord[] = [];
    const starts = [...this.windows.keys()].sort((a, b) => a - b);
    for (const start of starts) {
      const window = this.windows.get(start) as Window;
      const stop = start + this.sizeMs;
      if (stop > watermark) break; // later windows end later still
      if (this.top === undefined) {
        for (const group of groupsOf(window)) {
          if (!group.dirty) continue;
          this.emitted(group);
          out.push(this.output(window, group));
        }
      } else this.emitTop(window, out);
      if (!end && stop + this.latenessMs <= watermark) {
        for (const group of groupsOf(window)) {
          group.pending = false;
          this.removed.push(`${start}|${group.key}`);
        }
        this.windows.delete(start);
      }
    }
    if (!end && watermark > this.closed) this.closed = watermark;
    return out;
  }

  /**
   * Top-N: when any group of the window changed, its first `n` groups by the `by` aggregate (greatest first, nulls
   * last, ties by group key), each with its `rank`, so that a table keyed on the window and the rank holds the
   * current top N, a late record moving a group in or out included.
   */
  private emitTop(window: Window, out: EtlRecord[]): void {
    const top = this.top as { n: number; by: string };
    let changed = false;
    const rows: Array<{ key: string; row: EtlRecord }> = [];
    for (const group of groupsOf(window)) {
      if (group.dirty) changed = true;
      if (group.dirty) this.emitted(group);
      rows.push({ key: group.key, row: this.output(window, group) });
    }
    if (!changed) return;
    const value = (r: EtlRecord) => r[top.by] as number | null;
    rows.sort((a, b) => {
      const x = value(a.row);
      const y = value(b.row);
      if (x !== y) return y === null ? -1 : x === null ? 1 : y - x;
      return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
    });
    for (let i = 0; i < rows.length && i < top.n; i++) {
      const row = rows[i]?.row as EtlRecord;
      row.rank = i + 1;
      out.push(row);
    }
  }

  /** `group` was emitted as it stands; the next cut records that, so that a rerun does not emit it again. */
  private emitted(group: Group): void {
    group.dirty = false;
    if (!group.pending) {
      group.pending = true;
      this.pending.push(group);
    }
  }

  private output(window: Window, group: Group): EtlRecord {
    const record: Record<string, unknown> = { window_start: window.startText, window_end: window.endText };
    for (let i = 0; i < this.groupBy.length; i++) record[this.groupBy[i] as string] = group.values[i];
    group.acc.results(this.plan, record);
    return record as EtlRecord;
  }
}

function* groupsOf(window: Window): Iterable<Group> {
  yield* window.texts.values();
  yield* window.groups.values();
}
