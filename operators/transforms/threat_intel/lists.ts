/**
 * IP block lists read from local files, in the formats people download, all read by one tolerant reader:
 *
 * - one address or CIDR block per line, `#` comments (whole lines or after the entry): plain lists and FireHOL
 *   `.netset`/`.ipset` files;
 * - Spamhaus DROP/EDROP text, `1.10.16.0/20 ; SBL256894` with `;` comments: the text after `;` is kept as the
 *   entry's note (the SBL id);
 * - Spamhaus DROP JSON lines (`drop_v4.json`), `{"cidr":"1.10.16.0/20","sblid":"SBL256894",…}`: the `cidr`,
 *   with `sblid` as the note; lines without `cidr` (the closing metadata line) are skipped.
 *
 * A line that is none of these is refused and counted, with its line number, and the rest of the file loads.
 */
import { EventEmitter } from 'node:events';
import { type FSWatcher, watch } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { addressBytes, type Prefix, parsePrefix, prefixText } from './address.ts';
import { PrefixTrie } from './trie.ts';

export interface ListEntry {
  /** The block as written in its usual form (`192.0.2.0/24`). */
  readonly range: string;
  /** The comment that came with it (Spamhaus SBL id), or null. */
  readonly note: string | null;
}

export interface RefusedLine {
  readonly line: number;
  readonly text: string;
}

/** One list, ready for lookups. */
export class IpTable {
  private readonly v4 = new PrefixTrie(32);
  private readonly v6 = new PrefixTrie(128);
  private readonly entries: ListEntry[] = [];

  get size(): number {
    return this.entries.length;
  }

  add(prefix: Prefix, note: string | null): void {
    const trie = prefix.version === 4 ? this.v4 : this.v6;
    if (trie.insert(prefix.bytes, prefix.length, this.entries.length)) {
      this.entries.push({ range: prefixText(prefix), note });
    }
  }

  /** Readies the tries for lookups (their tables), once every block is added: not on the first record. */
  prepare(): void {
    this.v4.prepare();
    this.v6.prepare();
  }

  /** The most specific block holding the address (bytes from `addressBytes`), with its prefix length. */
  lookup(address: readonly number[]): { entry: ListEntry; length: number } | undefined {
    const found = (address.length === 4 ? this.v4 : this.v6).lookup(address);
    return found && { entry: this.entries[found.value] as ListEntry, length: found.length };
  }
}

/** Reads list text into a table; refused lines are returned, not thrown. */
export function parseList(text: string): { table: IpTable; refused: RefusedLine[] } {
  const table = new IpTable();
  const refused: RefusedLine[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = (lines[i] as string).trim();
    if (i === 0 && line.charCodeAt(0) === 0xfeff) line = line.slice(1).trim();
    if (line === '' || line[0] === '#' || line[0] === ';') continue;
    const parsed = line[0] === '{' ? jsonEntry(line) : textEntry(line);
    if (parsed === null) continue;
    const prefix = parsed && parsePrefix(parsed.range);
    if (!parsed || !prefix) {
      refused.push({ line: i + 1, text: line.length > 120 ? `${line.slice(0, 120)}…` : line });
      continue;
    }
    table.add(prefix, parsed.note);
  }
  table.prepare();
  return { table, refused };
}

/** `1.2.3.0/24 ; SBL123` or `1.2.3.4 # note`: the first word, and the comment after `;`. */
function textEntry(line: string): { range: string; note: string | null } {
  const hash = line.indexOf('#');
  const semi = line.indexOf(';');
  const cut = Math.min(hash < 0 ? line.length : hash, semi < 0 ? line.length : semi);
  const range = line.slice(0, cut).trim().split(/\s+/)[0] as string;
  const note = semi >= 0 && semi === cut ? line.slice(semi + 1).trim() || null : null;
  return { range, note };
}

/** A Spamhaus DROP JSON line; null for a line without `cidr` (metadata), undefined for one that is no JSON. */
function jsonEntry(line: string): { range: string; note: string | null } | null | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== 'object') return undefined;
  const { cidr, sblid } = value as { cidr?: unknown; sblid?: unknown };
  if (cidr === undefined) return null;
  if (typeof cidr !== 'string') return undefined;
  return { range: cidr, note: typeof sblid === 'string' ? sblid : null };
}

export interface ListOptions {
  readonly name: string;
  /** Absolute path. */
  readonly path: string;
}

export interface ReloadOptions {
  /** Reload when the file changes (inotify on its directory, so a file replaced by rename is seen too). */
  readonly watch: boolean;
  /** Also compare the file's size and mtime every so often (0: never), for file systems without events. */
  readonly intervalSeconds: number;
}

export interface LoadedEvent {
  readonly list: string;
  readonly path: string;
  readonly ranges: number;
  readonly refused: readonly RefusedLine[];
  /** True for a reload (the file changed), false for the first load. */
  readonly reload: boolean;
}

export interface FailedEvent {
  readonly list: string;
  readonly path: string;
  readonly error: Error;
}

/**
 * A list kept in step with its file: loaded at `open` (a missing or unreadable file, or one of which no line is
 * an address or block, fails the start), read again when the file changes. A reload that cannot read the file keeps the table it has and emits `failed`;
 * one that can swaps the table in at once, between two lookups, and emits `loaded`.
 */
export class WatchedList extends EventEmitter<{ loaded: [LoadedEvent]; failed: [FailedEvent] }> {
  private current = new IpTable();
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private version = '';
  private reading: Promise<void> | undefined;
  private again = false;
  private closed = false;

  readonly options: ListOptions;
  private readonly reload: ReloadOptions;

  constructor(options: ListOptions, reload: ReloadOptions) {
    super();
    this.options = options;
    this.reload = reload;
  }

  get name(): string {
    return this.options.name;
  }

  get table(): IpTable {
    return this.current;
  }

  /** Reads the file (failing when it cannot) and starts watching it. */
  async open(): Promise<LoadedEvent> {
    const loaded = await this.read(false);
    if (this.reload.watch) {
      // The directory, not the file: tools replace lists by writing a temporary file and renaming it, which
      // a watch on the old file's inode would never report.
      const file = basename(this.options.path);
      this.watcher = watch(dirname(this.options.path), { persistent: false }, (_event, name) => {
        if (name === null || name === file) this.changed();
      });
      this.watcher.on('error', (error) => this.emit('failed', { ...this.where(), error }));
    }
    if (this.reload.intervalSeconds > 0) {
      this.timer = setInterval(() => this.changed(), this.reload.intervalSeconds * 1000);
      this.timer.unref();
    }
    return loaded;
  }

  /** Whether `address` (bytes) is listed: the most specific block holding it. */
  lookup(address: readonly number[]): { entry: ListEntry; length: number } | undefined {
    return this.current.lookup(address);
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
    if (this.timer) clearInterval(this.timer);
  }

  private where() {
    return { list: this.options.name, path: this.options.path };
  }

  /** Something may have changed: read again unless the size and mtime are those of the version loaded. */
  private changed(): void {
    if (this.closed) return;
    if (this.reading) {
      this.again = true;
      return;
    }
    this.reading = this.reloadIfChanged().finally(() => {
      this.reading = undefined;
      if (this.again) {
        this.again = false;
        this.changed();
      }
    });
  }

  private async reloadIfChanged(): Promise<void> {
    try {
      const info = await stat(this.options.path);
      if (versionOf(info) === this.version) return;
      await this.read(true);
    } catch (error) {
      if (!this.closed) this.emit('failed', { ...this.where(), error: error as Error });
    }
  }

  private async read(reload: boolean): Promise<LoadedEvent> {
    const before = await stat(this.options.path);
    const text = await readFile(this.options.path, 'utf8');
    const { table, refused } = parseList(text);
    // A list download that saved an error page instead: keep the list (or refuse to start) rather than
    // silently stop matching.
    const first = refused[0];
    if (table.size === 0 && first) {
      throw new Error(
        `no address or CIDR block in it: ${refused.length} lines refused, the first at line ${first.line}: ${first.text}`,
      );
    }
    if (this.closed) return { ...this.where(), ranges: table.size, refused, reload };
    this.current = table;
    this.version = versionOf(before);
    const event = { ...this.where(), ranges: table.size, refused, reload };
    this.emit('loaded', event);
    return event;
  }
}

function versionOf(info: { size: number; mtimeMs: number; ino: number }): string {
  return `${info.ino}:${info.size}:${info.mtimeMs}`;
}

export { addressBytes };
