/**
 * The order of files modified at the same time (a fresh checkout, a copy that did not keep times): a rotated
 * set is still read in the order it was written. logrotate numbers older files higher (`access.log.2.gz`,
 * `access.log.1`, `access.log`), which plain path order reverses; here a set's highest number comes first and
 * the live file last, and files of different sets keep path order.
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

/** Older members of a rotated set first; otherwise path order. */
export function byRotation(a: string, b: string): number {
  const ra = rotationOf(a);
  const rb = rotationOf(b);
  if (ra.stem === rb.stem && ra.age !== rb.age) return rb.age - ra.age;
  return a < b ? -1 : a > b ? 1 : 0;
}
