/**
 * Who wrote a value into a store several instances share (Redis), so that a rerun can tell its own writes that
 * never committed from the rest: `instance|epoch|snapshot|batch`. `instance` names a pipeline's stage in one data
 * directory (kept there), `epoch` one run of it, `snapshot` the snapshot the write belongs to, `batch` the batch's
 * number within the run (a retried batch keeps its number). A stage checkpoints its `Epochs` (a few bytes per
 * run) and learns its own commits through the transform's two-phase `commit` hook.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Marker {
  readonly instance: string;
  readonly epoch: string;
  readonly snapshot: number;
  readonly batch: number;
}

export function formatMarker(marker: Marker): string {
  return `${marker.instance}|${marker.epoch}|${marker.snapshot}|${marker.batch}`;
}

export function parseMarker(value: string): Marker | undefined {
  const parts = value.split('|');
  if (parts.length !== 4) return undefined;
  const snapshot = Number(parts[2]);
  const batch = Number(parts[3]);
  if (!Number.isInteger(snapshot) || !Number.isInteger(batch)) return undefined;
  return { instance: parts[0] as string, epoch: parts[1] as string, snapshot, batch };
}

/** This stage's id in `dataDir` (`<kind>-<stage>.instance`), made on first use. */
export function instanceId(dataDir: string, kind: string, stage: string): string {
  const file = join(dataDir, `${kind}-${stage}.instance`);
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    const id = randomBytes(6).toString('base64url');
    writeFileSync(file, `${id}\n`, { flush: true });
    return id;
  }
}

/** Run epoch → the last snapshot it committed and when (epoch ms): what the stage checkpoints. */
export type EpochRecord = Record<string, { snapshot: number; at: number }>;

/** The runs of one stage instance and what each committed. */
export class Epochs {
  /** This run's epoch. */
  readonly current = randomBytes(6).toString('base64url');
  private earlier: EpochRecord = {};
  /** The last snapshot this run committed (the two-phase `commit` hook); 0 before the first. */
  private committedNow = 0;

  restore(saved: EpochRecord | undefined): void {
    this.earlier = { ...(saved ?? {}) };
  }

  /** The record to checkpoint at `snapshot`: earlier runs written within `keepMs`, and this run up to `snapshot`. */
  snapshot(snapshot: number, keepMs: number, now = Date.now()): EpochRecord {
    const kept: EpochRecord = {};
    for (const [epoch, entry] of Object.entries(this.earlier)) if (entry.at + keepMs > now) kept[epoch] = entry;
    this.earlier = { ...kept };
    return { ...kept, [this.current]: { snapshot, at: now } };
  }

  committed(snapshot: number): void {
    if (snapshot > this.committedNow) this.committedNow = snapshot;
  }

  /** The last committed snapshot of `epoch` (this run's too); undefined for a run that committed none known. */
  lastCommitted(epoch: string): number | undefined {
    if (epoch === this.current) return this.committedNow;
    return this.earlier[epoch]?.snapshot;
  }

  /** Earlier runs as `epoch=snapshot;…`, for a script to read. */
  encodeEarlier(): string {
    return Object.entries(this.earlier)
      .map(([epoch, entry]) => `${epoch}=${entry.snapshot}`)
      .join(';');
  }
}
