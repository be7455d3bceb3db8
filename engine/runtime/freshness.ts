/**
 * What a sink wrote, held until the checkpoint that makes it durable commits: then its records count as
 * committed and their freshness is observed (commit time minus event time, minus read time). One entry per
 * batch, not per record: the event time is sampled from the batch's first and last records (each standing
 * for half of it; an access log is in time order, so they are its oldest and newest), and the read time is
 * the one the source stamped on the batch.
 */
import { type EtlRecord, eventTimeOf } from '../record.ts';
import type { StageTelemetry } from '../telemetry/types.ts';

export class PendingCommits {
  readonly #field: string;
  readonly #stage: StageTelemetry;
  // Parallel arrays, oldest first: no object per batch.
  #snapshot: number[] = [];
  #records: number[] = [];
  #first: number[] = [];
  #last: number[] = [];
  #readAt: number[] = [];

  constructor(eventTimeField: string, stage: StageTelemetry) {
    this.#field = eventTimeField;
    this.#stage = stage;
  }

  /** `written` of `records` were taken by the sink for snapshot `snapshotId`; `readAt` from the envelope. */
  wrote(snapshotId: number, records: readonly EtlRecord[], written: number, readAt: number | undefined): void {
    if (written <= 0) return;
    const field = this.#field;
    this.#snapshot.push(snapshotId);
    this.#records.push(written);
    this.#first.push(eventTimeOf((records[0] as EtlRecord)[field]));
    this.#last.push(eventTimeOf((records[records.length - 1] as EtlRecord)[field]));
    this.#readAt.push(readAt ?? Number.NaN);
  }

  /** Snapshot `snapshotId` committed at `atMs`: what was written for it and before is durable. */
  committed(snapshotId: number, atMs: number): void {
    const ids = this.#snapshot;
    let n = 0;
    while (n < ids.length && (ids[n] as number) <= snapshotId) n++;
    if (n === 0) return;
    const stage = this.#stage;
    for (let i = 0; i < n; i++) {
      const records = this.#records[i] as number;
      const readAt = this.#readAt[i] as number;
      const readAge = Number.isNaN(readAt) ? undefined : (atMs - readAt) / 1000;
      const first = this.#first[i] as number;
      const last = this.#last[i] as number;
      const half = Math.ceil(records / 2);
      stage.committed(half, ageSeconds(atMs, first), readAge);
      stage.committed(records - half, ageSeconds(atMs, last), readAge);
    }
    this.#snapshot.splice(0, n);
    this.#records.splice(0, n);
    this.#first.splice(0, n);
    this.#last.splice(0, n);
    this.#readAt.splice(0, n);
  }
}

function ageSeconds(atMs: number, eventMs: number): number | undefined {
  return Number.isNaN(eventMs) ? undefined : (atMs - eventMs) / 1000;
}
