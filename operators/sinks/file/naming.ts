/**
 * Names of rolled files: `<stem>-<UTC yyyyMMddTHHmmss>-<sequence>.<ext>`. The timestamp makes names sort by
 * time; the zero-padded sequence ties a file to the checkpoint state (and keeps names unique within a second).
 */
import { basename } from 'node:path';

const pad = (n: number, width = 2) => String(n).padStart(width, '0');
const ROLLED_SUFFIX = /^\d{8}T\d{6}-(\d{6,})$/;

export function rolledName(path: string, sequence: number, at: Date): string {
  const { stem, ext } = splitName(path);
  const stamp =
    `${at.getUTCFullYear()}${pad(at.getUTCMonth() + 1)}${pad(at.getUTCDate())}` +
    `T${pad(at.getUTCHours())}${pad(at.getUTCMinutes())}${pad(at.getUTCSeconds())}`;
  return `${stem}-${stamp}-${pad(sequence, 6)}${ext}`;
}

/** The sequence number of `name` if it is a file rolled from `path`, else undefined. */
export function rolledSequence(path: string, name: string): number | undefined {
  const { stem, ext } = splitName(path);
  if (name.length <= stem.length + ext.length + 1 || !name.startsWith(`${stem}-`) || !name.endsWith(ext)) {
    return undefined;
  }
  const match = ROLLED_SUFFIX.exec(name.slice(stem.length + 1, name.length - ext.length));
  return match ? Number(match[1]) : undefined;
}

/** `parsed.jsonl.gz` → stem `parsed`, ext `.jsonl.gz`; `parsed` → stem `parsed`, ext ``. */
export function splitName(path: string): { stem: string; ext: string } {
  const name = basename(path);
  const first = name.endsWith('.gz') ? name.lastIndexOf('.', name.length - 4) : name.lastIndexOf('.');
  const dot = first > 0 ? first : name.endsWith('.gz') && name.length > 3 ? name.length - 3 : -1;
  return dot > 0 ? { stem: name.slice(0, dot), ext: name.slice(dot) } : { stem: name, ext: '' };
}
