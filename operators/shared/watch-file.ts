/**
 * Tells when a file is replaced or rewritten on disk, for operators that hold its contents in memory (a GeoIP
 * database) and must reopen it. The parent directory is watched rather than the file, because updaters write the
 * new file aside and rename it over the old one (geoipupdate does), which a watch on the old inode never sees.
 * Hand-written rather than maxmind's own `watchForUpdates`: that one polls every 5 s with fs.watchFile and
 * cannot be stopped per reader, so a closed stage would keep its process alive.
 */
import { type FSWatcher, watch } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';

export interface FileWatch {
  close(): void;
}

/**
 * Calls `onChange` once the file at `path` has a new identity (inode, size or modification time) and no further
 * event came for `settleMs` (a file being written in place sends many). Errors of the watch go to `onError`.
 * Resolves once watching, with the identity the file has then: start it before reading the file, so that a
 * change made while it is read is not missed.
 */
export async function watchFile(
  path: string,
  onChange: () => void,
  onError: (error: Error) => void,
  settleMs = 200,
): Promise<FileWatch> {
  const name = basename(path);
  let last: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const identity = async (): Promise<string | undefined> => {
    try {
      const s = await stat(path, { bigint: true });
      return `${s.ino}:${s.size}:${s.mtimeNs}`;
    } catch {
      return undefined;
    }
  };
  const settled = async () => {
    timer = undefined;
    const id = await identity();
    // A file gone (mid-rename) or unchanged is no reason to reopen; the next event will tell.
    if (closed || id === undefined || id === last) return;
    last = id;
    onChange();
  };
  let watcher: FSWatcher;
  try {
    watcher = watch(dirname(path), { persistent: false }, (_event, file) => {
      if (file !== null && file !== name) return;
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => void settled(), settleMs);
    });
  } catch (error) {
    onError(error as Error);
    return { close: () => {} };
  }
  watcher.on('error', (error) => onError(error));
  // After the watch starts: a change between the two is then seen by the watch.
  last = await identity();
  return {
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      watcher.close();
    },
  };
}
