/**
 * The event-time watermark one stage sees: "no record older than this is expected any more". Per source
 * the records came from (their origin), the greatest event time seen minus the allowed lateness; the stage's
 * watermark is the least of these, so that a fan-in waits for its slowest input. A source whose records
 * have not arrived for `idleMs` no longer holds it back (an input gone quiet must not stop windows from
 * closing). When every source is idle and nothing they emitted is still on its way (`drained`: every batch
 * acknowledged, so no record is held up by a slow stage or a sink retrying), event time is taken to go on at the
 * pace of processing time from the last record seen: the greatest event time plus the processing time since it
 * arrived, minus the lateness, so that the last windows of a followed input close while no line arrives. That
 * assumes lines reach the source within the lateness of their event time (a server buffering its log for longer
 * needs a larger `watermark_lateness_seconds`).
 *
 * A source upstream of the stage that has not been seen yet holds the watermark back too (as if its event time were
 * −∞), until it has been quiet for `idleMs` from the stage's start: otherwise the first source to send would move
 * the watermark on alone, and the first records of the others (logs of servers read side by side, a queue that
 * connects later) would arrive as late. Records with no source in their origin (made by a stage, not read) count
 * as every source seen.
 */
import { type EtlRecord, eventTimeOf, ORIGIN } from '../record.ts';

interface SourceTime {
  /** Greatest event time seen, epoch milliseconds. */
  max: number;
  /** Processing time of the last record seen. */
  seenAt: number;
}

export class Watermark {
  private readonly field: string;
  private readonly latenessMs: number;
  private readonly idleMs: number;
  private readonly now: () => number;
  private readonly drained: () => boolean;
  private readonly sources = new Map<string, SourceTime>();
  /** Sources upstream of the stage not seen yet; emptied once every one has sent, or has been idle since start. */
  private unseen: Set<string>;
  private readonly startedAt: number;

  constructor(options: {
    field: string;
    latenessMs: number;
    idleMs: number;
    now?: () => number;
    /** Whether every record the sources emitted has been acknowledged (none is on its way to the stage). */
    drained?: () => boolean;
    /** The ids of the sources upstream of the stage. */
    expected?: readonly string[];
  }) {
    this.field = options.field;
    this.latenessMs = options.latenessMs;
    this.idleMs = options.idleMs;
    this.now = options.now ?? Date.now;
    this.drained = options.drained ?? (() => true);
    this.unseen = new Set(options.expected ?? []);
    this.startedAt = this.now();
  }

  /** Takes note of the event times of records arriving at the stage. */
  observe(records: readonly EtlRecord[]): void {
    const now = this.now();
    let last: SourceTime | undefined;
    let lastSource: string | undefined;
    // Records of one second share their time text: parse it once per run of equal ones.
    let lastValue: unknown;
    let lastTime = Number.NaN;
    for (let i = 0; i < records.length; i++) {
      const record = records[i] as EtlRecord;
      const value = record[this.field];
      if (value !== lastValue || typeof value !== 'string') {
        lastValue = value;
        lastTime = eventTimeOf(value);
      }
      const time = lastTime;
      if (Number.isNaN(time)) continue;
      const source = record[ORIGIN]?.source ?? '';
      if (source !== lastSource) {
        lastSource = source;
        if (this.unseen.size > 0) {
          if (source === '') this.unseen.clear();
          else this.unseen.delete(source);
        }
        last = this.sources.get(source);
        if (!last) {
          last = { max: time, seenAt: now };
          this.sources.set(source, last);
        }
      }
      const entry = last as SourceTime;
      if (time > entry.max) entry.max = time;
      entry.seenAt = now;
    }
  }

  /** The watermark, epoch milliseconds; undefined before any record with an event time arrived. */
  value(): number | undefined {
    if (this.sources.size === 0) return undefined;
    const now = this.now();
    if (this.unseen.size > 0) {
      if (now - this.startedAt < this.idleMs) return undefined;
      this.unseen.clear();
    }
    let active = Number.POSITIVE_INFINITY;
    let latest = Number.NEGATIVE_INFINITY;
    let lastSeen = Number.NEGATIVE_INFINITY;
    for (const source of this.sources.values()) {
      if (now - source.seenAt < this.idleMs && source.max < active) active = source.max;
      if (source.max > latest) latest = source.max;
      if (source.seenAt > lastSeen) lastSeen = source.seenAt;
    }
    if (active !== Number.POSITIVE_INFINITY) return active - this.latenessMs;
    return this.drained() ? latest + (now - lastSeen) - this.latenessMs : latest - this.latenessMs;
  }
}
