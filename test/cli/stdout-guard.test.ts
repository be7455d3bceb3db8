/** engine/cli/stdout-guard.ts: what a command's standard output does when its reader goes away or a write fails. */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { guardStdout } from '../../engine/cli/stdout-guard.ts';

const errno = (code: string) => Object.assign(new Error(`write ${code}`), { code });

function guarded() {
  const stream = new PassThrough();
  const err = new PassThrough();
  const codes: number[] = [];
  const guard = guardStdout({ stream, err, setExitCode: (code) => codes.push(code) });
  return { stream, err, codes, guard };
}

describe('the standard output guard', () => {
  it('ends quietly when the reader goes away: the reader-gone signal, the exit code untouched', () => {
    const { stream, err, codes, guard } = guarded();
    expect(guard.readerGone.aborted).toBe(false);
    stream.emit('error', errno('EPIPE'));
    stream.emit('error', errno('ERR_STREAM_DESTROYED'));
    expect(guard.readerGone.aborted).toBe(true);
    expect(guard.exitCode(0)).toBe(0);
    expect(guard.exitCode(1)).toBe(1);
    expect(err.read()).toBeNull();
    expect(codes).toEqual([]);
  });

  it('fails the command on another write error, once, even after it returned', () => {
    const { stream, err, codes, guard } = guarded();
    stream.emit('error', errno('ENOSPC'));
    stream.emit('error', errno('ENOSPC'));
    expect(err.read()?.toString()).toBe('etl: cannot write to standard output: write ENOSPC\n');
    expect(codes).toEqual([1]);
    expect(guard.exitCode(0)).toBe(1);
    expect(guard.readerGone.aborted).toBe(false);
  });

  it('leaves an error to another listener (a stdout sink failing its run)', () => {
    const { stream, err, codes, guard } = guarded();
    stream.on('error', () => {});
    stream.emit('error', errno('ENOSPC'));
    expect(err.read()).toBeNull();
    expect(codes).toEqual([]);
    expect(guard.exitCode(0)).toBe(0);
  });

  it('is one per stream', () => {
    const { stream, guard } = guarded();
    expect(guardStdout({ stream })).toBe(guard);
  });
});
