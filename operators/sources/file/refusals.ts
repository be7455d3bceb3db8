/**
 * What the file source says when a checkpoint does not match the files, or a file cannot be read completely:
 * what does not match, and how to proceed.
 */
import { EtlError } from '../../../engine/errors.ts';
import type { GzipCheck } from '../../shared/line-reader/chunks.ts';

/** The way out when the checkpoint is wrong: `etl apply --reset` (engine/state), as its own refusals put it. */
function startOver(pipeline: string): string {
  return (
    `start pipeline ${pipeline} over with \`etl apply --reset\` (every source reads from its start; sinks that ` +
    'append will hold the records twice)'
  );
}

export function notFilePosition(pipeline: string, source: string, problem: string): EtlError {
  return new EtlError(
    'ETL_STATE_MISMATCH',
    `the checkpoint's position for source ${source} is not a position of the file source: ${problem}. Was the ` +
      `stage id used by another type of source? To go on, ${startOver(pipeline)}`,
  );
}

export function offsetBeyondFile(
  pipeline: string,
  path: string,
  offset: number,
  size: number,
  mtimeMs: number,
): EtlError {
  return new EtlError(
    'ETL_STATE_MISMATCH',
    `the checkpoint does not match ${path}: it says ${offset} bytes of it were read, the file has ${size}, and it ` +
      `was not modified since (last modified ${new Date(mtimeMs).toISOString()}). Is it an older copy put back, or ` +
      `is this the state of another pipeline? Put back the file the checkpoint was taken on, or ${startOver(pipeline)}`,
  );
}

export function offsetBeyondGzip(pipeline: string, path: string, offset: number, length: number): EtlError {
  return new EtlError(
    'ETL_STATE_MISMATCH',
    `the checkpoint does not match ${path}: it says ${offset} bytes of it were read, but it decompresses to ` +
      `${length}. Is it another file with the same beginning, or is this the state of another pipeline? Put back ` +
      `the file the checkpoint was taken on, or ${startOver(pipeline)}`,
  );
}

/** Why no line of a compressed file that did not check was emitted, and what to do. */
export function brokenGzip(path: string, check: Extract<GzipCheck, { ok: false }>, afterLine: number): string {
  const what =
    check.problem === 'cut'
      ? `ends in the middle of its data (${check.detail}): cut short, a partial copy?`
      : check.problem === 'corrupt'
        ? `is corrupt (${check.detail})`
        : `cannot be read (${check.detail})`;
  const since = afterLine > 0 ? ` after line ${afterLine}` : '';
  return (
    `compressed file ${path} ${what}; none of its lines${since} were emitted, as none can be trusted before the ` +
    'check at its end. The next run tries it again: replace it with a whole copy'
  );
}

export function gzipStaysCut(path: string, waitedMs: number): string {
  return (
    `compressed file ${path} ends in the middle of its data and has not grown for ${waitedMs} ms: cut short, a ` +
    'partial copy? None of its lines were emitted; it is read if it grows, or by the next run'
  );
}

/** A file truncated while it was read to its end (no follow). */
export function shrankWhileRead(path: string, had: number, read: number, now: number, cutLine: boolean): string {
  return (
    `file ${path} shrank while it was read (truncated in place?): it had ${had} bytes, lines up to byte ${read} ` +
    `were read, it now has ${now}; the rest was not read${cutLine ? ' and its cut last line was not emitted' : ''}. ` +
    'A copy of it that matches the paths (copytruncate) is read from there by the next run; the file itself is ' +
    'read again from its start'
  );
}
