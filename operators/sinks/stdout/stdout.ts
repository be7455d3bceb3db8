/**
 * Writes lines to a stream (stdout by default), honouring its backpressure. A batch is acknowledged only once
 * the stream has handed all its bytes to the system (the write's callback), so that a checkpoint never covers a
 * line still waiting in Node's buffer. A write error fails that write and every later one: EPIPE (the reader went
 * away, `| head`) with ETL_OUTPUT_CLOSED, any other (a full disk behind `> file`) with its message. The run then
 * stops without a checkpoint past what was written, and the next run writes the rest.
 */
import type { Writable } from 'node:stream';
import { EtlError } from '../../../engine/errors.ts';
import type { OperatorContext, Sink, SinkWriteContext } from '../../../engine/operator.ts';
import type { EtlRecord } from '../../../engine/record.ts';
import type { StdoutSinkOptions } from './schema.ts';

export function createStdoutSink(
  options: StdoutSinkOptions,
  _ctx: OperatorContext,
  stream: Writable = process.stdout,
): Sink {
  let failure: Error | undefined;
  const failed = (error: NodeJS.ErrnoException): Error => {
    failure ??= writeFailure(error);
    return failure;
  };
  // Without a listener, the stream's 'error' event would crash the process instead of failing the run.
  const onError = (error: NodeJS.ErrnoException) => {
    failed(error);
  };
  stream.on('error', onError);
  const line = options.format === 'text' ? textLine : jsonLine;

  return {
    async write(records: EtlRecord[], writeCtx: SinkWriteContext) {
      if (failure) throw failure;
      let out = '';
      for (let i = 0; i < records.length; i++) {
        const record = records[i] as EtlRecord;
        try {
          out += line(record);
        } catch (error) {
          writeCtx.deadLetter(record, `cannot write: ${(error as Error).message}`);
        }
      }
      if (out.length === 0) return;
      // The callback runs once the bytes are with the system (a pipe's buffer, a file), or with the error.
      let outcome: { error: Error | null | undefined } | undefined;
      let settle: (() => void) | undefined;
      stream.write(out, (error?: Error | null) => {
        if (error) failed(error);
        outcome = { error };
        settle?.();
      });
      // Written at once (the usual case while the reader keeps up): nothing left in Node's buffer to wait for.
      if (outcome === undefined && stream.writableLength === 0 && !stream.errored) return;
      await new Promise<void>((resolve, reject) => {
        settle = () => (outcome?.error ? reject(failed(outcome.error)) : resolve());
        if (outcome) settle();
      });
    },
    async flush() {
      if (failure) throw failure;
    },
    async close() {
      // A broken stream may still emit errors; the listener stays so they never go unhandled.
      if (!failure) stream.off('error', onError);
    },
  };
}

/** EPIPE is final and retrying cannot help: the error says so (not retriable), whatever the run's retry policy. */
function writeFailure(error: NodeJS.ErrnoException): Error {
  if (error.code === 'EPIPE') {
    return new EtlError(
      'ETL_OUTPUT_CLOSED',
      'standard output was closed by its reader (EPIPE); the records not written are left for the next run',
    );
  }
  return new Error(`cannot write to standard output: ${error.message}`, { cause: error });
}

const jsonLine = (record: EtlRecord) => `${JSON.stringify(record)}\n`;
const textLine = (record: EtlRecord) =>
  typeof record.message === 'string' ? `${record.message}\n` : `${JSON.stringify(record)}\n`;
