/**
 * Which lists hold a client address, answered per address text and kept: clients repeat, and a cached answer
 * is one Map lookup on a short string, where a fresh one parses the address and walks each list's trie.
 */
import { cacheKey } from '../../shared/cache-key.ts';
import { addressBytes, type ListEntry } from './lists.ts';

/** A list as the matcher reads it (WatchedList, or an IpTable with a name). */
export interface NamedTable {
  readonly name: string;
  lookup(address: readonly number[]): { entry: ListEntry; length: number } | undefined;
}

/** The `threat_lists`, `threat_range` and `threat_range_note` of an address some list holds. */
export interface ListVerdict {
  /** The lists holding the address, comma-separated, in the lists' order. */
  readonly names: string;
  /** The most specific block among them (the first list's on a tie), and its note. */
  readonly range: string;
  readonly note: string | null;
}

/**
 * The verdict on `value` computed afresh (undefined when no list holds it, or it is no address): what
 * `ListVerdicts` keeps.
 */
export function matchLists(lists: readonly NamedTable[], value: string): ListVerdict | undefined {
  const address = addressBytes(value);
  if (address === undefined) return undefined;
  let best = -1;
  let names: string | null = null;
  let range = '';
  let note: string | null = null;
  for (const list of lists) {
    const hit = list.lookup(address);
    if (hit === undefined) continue;
    names = names === null ? list.name : `${names},${list.name}`;
    if (hit.length > best) {
      best = hit.length;
      range = hit.entry.range;
      note = hit.entry.note;
    }
  }
  return names === null ? undefined : { names, range, note };
}

/** Verdicts kept: the geoip cache's default size; emptied when full (an entry is an address and a shared answer). */
export const VERDICTS_KEPT = 50_000;
const NONE = Object.freeze({ none: true });

/** `matchLists` with its answers kept by address text; `clear()` when a list changes. */
export class ListVerdicts {
  private readonly kept = new Map<string, ListVerdict | typeof NONE>();
  private readonly lists: () => readonly NamedTable[];
  private readonly size: number;

  constructor(lists: () => readonly NamedTable[], size = VERDICTS_KEPT) {
    this.lists = lists;
    this.size = size;
  }

  match(value: string): ListVerdict | undefined {
    const known = this.kept.get(value);
    if (known !== undefined) return known === NONE ? undefined : (known as ListVerdict);
    const verdict = matchLists(this.lists(), value);
    if (this.kept.size >= this.size) this.kept.clear();
    this.kept.set(cacheKey(value), verdict ?? NONE);
    return verdict;
  }

  clear(): void {
    this.kept.clear();
  }
}
