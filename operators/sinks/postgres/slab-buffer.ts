/**
 * The byte storage both COPY encoders write rows into (copy-buffer.ts for text, binary-buffer.ts for binary):
 * slabs of `slabBytes`; `take` hands out a view of the rows written since the last one, not a copy, and the next
 * rows follow in the same slab until it is full. A view handed out is never written again: a full slab is left
 * to the views, and the rows not yet taken move to a new one.
 */
export class SlabBuffer {
  protected buf: Buffer;
  /** Where the rows not yet taken begin in `buf`. */
  protected start = 0;
  /** Where the next byte goes in `buf`. */
  protected end = 0;
  private readonly slabBytes: number;

  constructor(slabBytes = 4 << 20) {
    this.slabBytes = slabBytes;
    this.buf = Buffer.allocUnsafe(slabBytes);
  }

  /** Bytes written since the last `take`. */
  get length(): number {
    return this.end - this.start;
  }

  /** Drops what was written after the first `length` bytes since the last `take` (a refused row). */
  truncate(length: number): void {
    this.end = this.start + length;
  }

  /** The bytes written since the last `take` (a view of the slab, never written again). */
  take(): Buffer {
    const out = this.buf.subarray(this.start, this.end);
    this.start = this.end;
    return out;
  }

  /** Makes room for `bytes` more: a new slab, with the rows not yet taken moved to its start. */
  protected reserve(bytes: number): void {
    if (this.end + bytes <= this.buf.length) return;
    const pending = this.end - this.start;
    const slab = Buffer.allocUnsafe(Math.max(this.slabBytes, 2 * (pending + bytes)));
    this.buf.copy(slab, 0, this.start, this.end);
    this.buf = slab;
    this.start = 0;
    this.end = pending;
  }
}
