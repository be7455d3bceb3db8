/**
 * The order files are read in. logrotate numbers older files higher (`access.log.2.gz`, `access.log.1`,
 * `access.log`): within such a rotated set that numbering is the order the lines were written, whatever the
 * files' times say (a fresh checkout or a copy gives them arbitrary ones, milliseconds apart). Sets, and files
 * of no set, are read oldest modified first (a set counts as old as its oldest member), then in path order.
 */
const ROTATED = /^(.*?)(?:\.(\d+))?(?:\.(?:gz|gzip))?$/;

interface Rotation {
  readonly stem: string;
  /** 0 for the live file; N for `.N` and `.N.gz`. */
  readonly age: number;
}

function rotationOf(path: string): Rotation {
  const match = ROTATED.exec(path) as RegExpExecArray;
  return { stem: match[1] as string, age: match[2] === undefined ? 0 : Number(match[2]) };
}

export interface Readable {
  readonly path: string;
  readonly mtimeMs: number;
  /** Tells apart files that held the same path in turn. */
  readonly seq: number;
}

/** Sorts `files` in place into reading order. */
export function sortForReading<T extends Readable>(files: T[]): void {
  const rotation = new Map<T, Rotation>();
  const setTime = new Map<string, number>();
  for (const file of files) {
    const r = rotationOf(file.path);
    rotation.set(file, r);
    setTime.set(r.stem, Math.min(setTime.get(r.stem) ?? Number.POSITIVE_INFINITY, file.mtimeMs));
  }
  files.sort((a, b) => {
    const ra = rotation.get(a) as Rotation;
    const rb = rotation.get(b) as Rotation;
    if (ra.stem !== rb.stem) {
      const byTime = (setTime.get(ra.stem) as number) - (setTime.get(rb.stem) as number);
      return byTime || (ra.stem < rb.stem ? -1 : 1);
    }
    return rb.age - ra.age || a.mtimeMs - b.mtimeMs || (a.path < b.path ? -1 : a.path > b.path ? 1 : a.seq - b.seq);
  });
}
