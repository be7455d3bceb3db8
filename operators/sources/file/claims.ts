/**
 * Checkpoint entries waiting for their file at start, indexed so that matching ten thousand files against ten
 * thousand entries costs a lookup each: by device and inode (the file was not moved), and by fingerprint (it
 * was renamed, or moved to another file system).
 */
import type { FileEntry } from './position.ts';
import { keyOf } from './tracked.ts';

export class Claims {
  private readonly byKey = new Map<string, FileEntry[]>();
  private readonly byHash = new Map<string, FileEntry[]>();
  private readonly taken = new Set<FileEntry>();
  private readonly generations = new Map<string, number>();

  constructor(entries: readonly FileEntry[]) {
    for (const e of entries) {
      const key = keyOf(e.dev, e.ino);
      this.generations.set(key, Math.max(this.generations.get(key) ?? 0, e.generation ?? 0));
      push(this.byKey, key, e);
      push(this.byHash, `${e.fingerprint_bytes}:${e.fingerprint}`, e);
    }
  }

  /** Device-and-inode keys of the entries, so that the files they name claim them first. */
  keys(): Set<string> {
    return new Set(this.byKey.keys());
  }

  /** Unclaimed entries naming this device and inode, in checkpoint order. */
  withKey(dev: number, ino: number): FileEntry[] {
    return this.open(this.byKey.get(keyOf(dev, ino)));
  }

  /** Unclaimed entries with this fingerprint, in checkpoint order. */
  withFingerprint(hash: string, bytes: number): FileEntry[] {
    return this.open(this.byHash.get(`${bytes}:${hash}`));
  }

  /**
   * The highest content generation any entry (claimed or not) gives this device and inode, or undefined when none
   * names it: a file read from its start under a known device and inode has had its content replaced since.
   */
  lastGeneration(dev: number, ino: number): number | undefined {
    return this.generations.get(keyOf(dev, ino));
  }

  take(entry: FileEntry): FileEntry {
    this.taken.add(entry);
    return entry;
  }

  clear(): void {
    this.byKey.clear();
    this.byHash.clear();
    this.taken.clear();
    this.generations.clear();
  }

  private open(list: FileEntry[] | undefined): FileEntry[] {
    return list === undefined ? [] : list.filter((e) => !this.taken.has(e));
  }
}

function push(map: Map<string, FileEntry[]>, key: string, entry: FileEntry): void {
  const list = map.get(key);
  if (list) list.push(entry);
  else map.set(key, [entry]);
}
