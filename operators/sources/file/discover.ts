/**
 * Which files the globs match. Node's fs.glob walks only the directories a pattern can reach and
 * needs no dependency; picomatch compiles the exclude patterns once (so a rescan every poll costs a
 * function call per candidate) and tells which directory each pattern starts from, to watch it.
 */
import { glob, stat } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import picomatch from 'picomatch';

export interface Candidate {
  readonly path: string;
  readonly dev: number;
  readonly ino: number;
  readonly size: number;
}

export interface DiscoveryProblem {
  readonly path: string;
  readonly error: NodeJS.ErrnoException;
}

export class FileMatcher {
  private readonly patterns: string[];
  private readonly excluded: (path: string) => boolean;
  /** Directories the patterns start from: where new files can appear. */
  readonly baseDirs: readonly string[];

  constructor(paths: readonly string[], exclude: readonly string[], baseDir: string) {
    this.patterns = paths.map((p) => (isAbsolute(p) ? p : resolve(baseDir, p)));
    const excludes = exclude.map((p) => (p.includes('/') && !isAbsolute(p) ? resolve(baseDir, p) : p));
    this.excluded = excludes.length === 0 ? () => false : picomatch(excludes, { basename: true, dot: true });
    this.baseDirs = [
      ...new Set(
        this.patterns.map((p) => {
          const scan = picomatch.scan(p);
          return scan.isGlob ? scan.base || '/' : dirname(p);
        }),
      ),
    ];
  }

  /** Matching regular files, sorted by path; files that vanish or cannot be stat'ed go to `problems`. */
  async list(problems?: DiscoveryProblem[]): Promise<Candidate[]> {
    const paths = new Set<string>();
    for await (const path of glob(this.patterns)) {
      const absolute = resolve(path);
      if (!this.excluded(absolute)) paths.add(absolute);
    }
    const sorted = [...paths].sort();
    const found: Candidate[] = [];
    for (const path of sorted) {
      try {
        const st = await stat(path);
        if (st.isFile()) found.push({ path, dev: st.dev, ino: st.ino, size: st.size });
      } catch (error) {
        problems?.push({ path, error: error as NodeJS.ErrnoException });
      }
    }
    return found;
  }
}
