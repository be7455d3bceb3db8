/**
 * What the `s3` source checkpoints: which keys are done and where reading stopped in the current one. Bounded:
 * a watermark (every key up to it, in key order, is done) plus the keys read past it, which the watermark
 * passes once they are older than `late_arrival_seconds`, plus at most one object read in part.
 */

/** Where reading of one object stopped: the next line starts at `offset` (in the decompressed bytes). */
export interface PartialObject {
  readonly key: string;
  /** The object's ETag when reading began: another ETag means the object was replaced, and is read anew. */
  readonly etag: string;
  readonly gzip: boolean;
  readonly offset: number;
  /** Lines read so far; the next is number `line + 1`. */
  readonly line: number;
  /** True while the rest of a line cut at `max_line_bytes` is being skipped. */
  readonly skipping: boolean;
}

export interface S3Position {
  readonly bucket: string;
  readonly prefix: string;
  /** Every key under the prefix up to this one (inclusive, in UTF-8 byte order, as S3 lists) is done. */
  readonly watermark: string | null;
  /** Keys after the watermark read whole, sorted. */
  readonly done: readonly string[];
  readonly partial: PartialObject | null;
}

/** An object as listed. */
export interface ListedObject {
  readonly key: string;
  readonly etag: string;
  readonly size: number;
  /** Epoch ms. */
  readonly lastModified: number;
}

/** S3 lists keys in the order of their UTF-8 bytes: compare so, not by UTF-16 code units. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export class Ledger {
  readonly bucket: string;
  readonly prefix: string;
  watermark: string | null = null;
  private readonly doneKeys = new Set<string>();
  partial: PartialObject | null = null;

  constructor(bucket: string, prefix: string) {
    this.bucket = bucket;
    this.prefix = prefix;
  }

  /** The ledger a checkpointed position describes; undefined when it is of another bucket or prefix. */
  static restore(bucket: string, prefix: string, position: unknown): Ledger | undefined {
    if (!isPosition(position) || position.bucket !== bucket || position.prefix !== prefix) return undefined;
    const ledger = new Ledger(bucket, prefix);
    ledger.watermark = position.watermark;
    for (const key of position.done) ledger.doneKeys.add(key);
    ledger.partial = position.partial;
    return ledger;
  }

  isDone(key: string): boolean {
    return (this.watermark !== null && compareKeys(key, this.watermark) <= 0) || this.doneKeys.has(key);
  }

  get doneCount(): number {
    return this.doneKeys.size;
  }

  complete(key: string): void {
    if (this.partial?.key === key) this.partial = null;
    if (!this.isDone(key)) this.doneKeys.add(key);
  }

  /**
   * Moves the watermark over the listed keys (sorted, all after the watermark) that are done and were last
   * modified before `settledBefore`, up to the first that is not.
   */
  advance(listed: readonly ListedObject[], settledBefore: number): void {
    let moved = false;
    for (const object of listed) {
      if (this.watermark !== null && compareKeys(object.key, this.watermark) <= 0) continue;
      if (!this.doneKeys.has(object.key) || object.lastModified >= settledBefore) break;
      this.watermark = object.key;
      moved = true;
    }
    if (!moved || this.watermark === null) return;
    const watermark = this.watermark;
    for (const key of this.doneKeys) if (compareKeys(key, watermark) <= 0) this.doneKeys.delete(key);
  }

  position(): S3Position {
    return {
      bucket: this.bucket,
      prefix: this.prefix,
      watermark: this.watermark,
      done: [...this.doneKeys].sort(compareKeys),
      partial: this.partial,
    };
  }
}

function isPosition(value: unknown): value is S3Position {
  if (value === null || typeof value !== 'object') return false;
  const p = value as Record<string, unknown>;
  return (
    typeof p.bucket === 'string' &&
    typeof p.prefix === 'string' &&
    (p.watermark === null || typeof p.watermark === 'string') &&
    Array.isArray(p.done) &&
    p.done.every((key) => typeof key === 'string') &&
    (p.partial === null || isPartial(p.partial))
  );
}

function isPartial(value: unknown): value is PartialObject {
  if (value === null || typeof value !== 'object') return false;
  const p = value as Record<string, unknown>;
  return (
    typeof p.key === 'string' &&
    typeof p.etag === 'string' &&
    typeof p.gzip === 'boolean' &&
    Number.isSafeInteger(p.offset) &&
    Number.isSafeInteger(p.line) &&
    typeof p.skipping === 'boolean'
  );
}
