/**
 * Which files the globs match. Node's fs.glob walks only the directories a pattern can reach and needs no
 * dependency; path.matchesGlob uses the same matcher, to tell whether one path an event names matches
 * without walking anything. picomatch compiles the exclude patterns once (so a rescan costs a function call
 * per candidate) and tells which directory each pattern starts from, to watch it.
 */
import { glob, stat } from 'node:fs/promises';
import { dirname, isAbsolute, matchesGlob, resolve } from 'node:path';
import picomatch from 'picomatch';

export interface Candidate {
  readonly path: string;
  readonly dev: number;
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
}

export interface DiscoveryProblem {
  readonly path: string;
  readonly error: NodeJS.ErrnoException;
}

/** Stats issued at once while listing: enough to hide the latency of each, few enough to bound memory. */
const STAT_CONCURRENCY = 32;

export class FileMatcher {
  private readonly patterns: string[];
  private readonly excluded: (path: string) => boolean;
  /** Directories the patterns start from: where new files can appear. */
  readonly baseDirs: readonly string[];
  /** Some pattern reaches into subdirectories (`**`, or a glob in a directory name): a new directory may hold matches. */
  readonly nested: boolean;

  constructor(paths: readonly string[], exclude: readonly string[], baseDir: string) {
    this.patterns = paths.map((p) => (isAbsolute(p) ? p : resolve(baseDir, p)));
    const excludes = exclude.map((p) => (p.includes('/') && !isAbsolute(p) ? resolve(baseDir, p) : p));
    this.excluded = excludes.length === 0 ? () => false : picomatch(excludes, { basename: true, dot: true });
    const scans = this.patterns.map((p) => ({ pattern: p, scan: picomatch.scan(p) }));
    this.baseDirs = [...new Set(scans.map(({ pattern, scan }) => (scan.isGlob ? scan.base || '/' : dirname(pattern))))];
    this.nested = scans.some(({ scan }) => scan.isGlob && scan.glob.includes('/'));
  }

  /**
   * Matching regular files, sorted by path; files that vanish or cannot be stat'ed go to `problems`. `known`
   * answers for paths whose file is already known (no stat: change notifications and the source's own checks
   * keep it current).
   */
  async list(problems?: DiscoveryProblem[], known?: (path: string) => Candidate | undefined): Promise<Candidate[]> {
    const paths = new Set<string>();
    for await (const path of glob(this.patterns)) {
      const absolute = resolve(path);
      if (!this.excluded(absolute)) paths.add(absolute);
    }
    const sorted = [...paths].sort();
    if (known === undefined) return this.candidates(sorted, problems);
    const found: Candidate[] = [];
    const unknown: string[] = [];
    for (const path of sorted) {
      const candidate = known(path);
      if (candidate) found.push(candidate);
      else unknown.push(path);
    }
    return [...found, ...(await this.candidates(unknown, problems))].sort((a, b) =>
      a.path < b.path ? -1 : a.path > b.path ? 1 : 0,
    );
  }

  /**
   * The candidates among `paths` (named by change notifications), without walking the globs. `others` are the
   * files among them that do not match (a file renamed out of the globs is found there). `directory` is true
   * when one of them is a directory that may hold matches: only a full `list` can tell what is in it.
   */
  async check(
    paths: Iterable<string>,
    problems?: DiscoveryProblem[],
  ): Promise<{ candidates: Candidate[]; others: Candidate[]; directory: boolean }> {
    const matching: string[] = [];
    const rest: string[] = [];
    for (const path of paths) (this.matches(path) ? matching : rest).push(path);
    const found = await this.candidates(matching.sort(), problems, true);
    const others = await this.candidates(rest, undefined, true, true);
    const directory = this.nested && others.some((c) => c.directory);
    return { candidates: found, others: others.filter((c) => !c.directory), directory };
  }

  /** Whether a path is one the globs match and the excludes do not. */
  matches(path: string): boolean {
    return !this.excluded(path) && this.patterns.some((p) => matchesGlob(path, p));
  }

  private async candidates(
    sorted: string[],
    problems?: DiscoveryProblem[],
    quietIfGone = false,
    directories = false,
  ): Promise<Array<Candidate & { directory?: true }>> {
    const found: Array<(Candidate & { directory?: true }) | undefined> = new Array(sorted.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < sorted.length; i = next++) {
        const path = sorted[i] as string;
        try {
          const st = await stat(path);
          if (st.isFile()) found[i] = { path, dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
          else if (directories && st.isDirectory()) {
            found[i] = { path, dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, directory: true };
          }
        } catch (error) {
          const e = error as NodeJS.ErrnoException;
          if (!(quietIfGone && e.code === 'ENOENT')) problems?.push({ path, error: e });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(STAT_CONCURRENCY, sorted.length) }, worker));
    return found.filter((c) => c !== undefined);
  }
}
