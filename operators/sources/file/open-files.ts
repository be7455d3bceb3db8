/**
 * The descriptors a followed set of files holds, at most `max` of them: least recently active first, so that
 * an idle file is the one to lose its descriptor (it is reopened by path, its identity checked, when it
 * changes). Files rotated away are read through their descriptor only, so they never lose it.
 */
import type { FileHandle } from 'node:fs/promises';
import { closeTracked, type Tracked } from './tracked.ts';

export class OpenFiles {
  private readonly max: number;
  /** Insertion order is recency: `touch` moves a file to the end. */
  private readonly files = new Set<Tracked>();

  constructor(max: number) {
    this.max = max;
  }

  get size(): number {
    return this.files.size;
  }

  hold(t: Tracked, handle: FileHandle): void {
    t.handle = handle;
    this.files.add(t);
  }

  /** The file was active: it is among the last to lose its descriptor. */
  touch(t: Tracked): void {
    if (t.handle === null) return;
    this.files.delete(t);
    this.files.add(t);
  }

  async release(t: Tracked): Promise<void> {
    this.files.delete(t);
    await closeTracked(t);
  }

  /** Frees a descriptor if all are taken; false when every one is held by a rotated file. */
  makeRoom(): boolean {
    if (this.files.size < this.max) return true;
    for (const o of this.files) {
      if (o.status === 'rotated') continue;
      void this.release(o);
      return true;
    }
    return false;
  }

  /** Closes the least recently active descriptors beyond the bound (rotated files keep theirs). */
  async trim(): Promise<void> {
    let excess = this.files.size - this.max;
    for (const o of [...this.files]) {
      if (excess <= 0) return;
      if (o.status === 'rotated') continue;
      await this.release(o);
      excess--;
    }
  }
}
