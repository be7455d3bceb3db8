/**
 * Standard output as every `etl` command shares it. Its reader may go away (`etl schema | head -c 200`): the
 * write fails with EPIPE, which Node reports as an 'error' event that crashes the process unless someone listens.
 * The guard listens for the whole process: EPIPE ends output quietly (what was printed is what the reader wanted;
 * a command that prints until stopped, tap or top, stops on `readerGone`), any other error (a full disk behind
 * `> file`) is reported on standard error and fails the command. A stdout sink listens too and fails its run
 * instead (operators/sinks/stdout): the guard leaves any error to such a listener.
 */
export interface StdoutGuard {
  /** Aborted when the reader went away. */
  readonly readerGone: AbortSignal;
  /** The command's exit code, made 1 by a write error that nobody else handled. */
  exitCode(code: number): number;
}

export interface StdoutGuardOptions {
  readonly stream?: NodeJS.WritableStream;
  readonly err?: NodeJS.WritableStream;
  /** Sets the process's exit code, for an error that comes after the command returned; tests pass their own. */
  readonly setExitCode?: (code: number) => void;
}

const guards = new WeakMap<NodeJS.WritableStream, StdoutGuard>();

/** The guard of `stream` (standard output by default), made at the first call. */
export function guardStdout(options: StdoutGuardOptions = {}): StdoutGuard {
  const stream = options.stream ?? process.stdout;
  const existing = guards.get(stream);
  if (existing) return existing;
  const err = options.err ?? process.stderr;
  const setExitCode =
    options.setExitCode ??
    ((code: number) => {
      process.exitCode = code;
    });
  const gone = new AbortController();
  let failed = false;
  const onError = (error: NodeJS.ErrnoException) => {
    // Writes after EPIPE find the stream destroyed; that is the same reader gone, not news.
    if (error.code === 'EPIPE' || (gone.signal.aborted && error.code === 'ERR_STREAM_DESTROYED')) {
      gone.abort();
      return;
    }
    if (failed || stream.listenerCount('error') > 1) return;
    failed = true;
    err.write(`etl: cannot write to standard output: ${error.message}\n`);
    setExitCode(1);
  };
  stream.on('error', onError);
  const guard: StdoutGuard = {
    readerGone: gone.signal,
    exitCode: (code) => (failed && code === 0 ? 1 : code),
  };
  guards.set(stream, guard);
  return guard;
}
