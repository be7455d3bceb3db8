/**
 * Writes lines to a stream (stdout by default), honouring its backpressure. EPIPE (the reader went away,
 * `| head`) ends output quietly; any other write error fails the next write, flush or close, so that
 * output is never lost without the run knowing.
 */
import type { OperatorContext, Sink, SinkWriteContext } from '../../../engine/operator.ts';
import type { EtlRecord } from '../../../engine/record.ts';
import type { StdoutSinkOptions } from './schema.ts';

export function createStdoutSink(
  options: StdoutSinkOptions,
  ctx: OperatorContext,
  stream: NodeJS.WritableStream = process.stdout,
): Sink {
  let readerGone = false;
  let failure: Error | undefined;
  const onError = (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') {
      if (!readerGone) ctx.logger.info('standard output was closed by its reader; discarding further output');
      readerGone = true;
    } else {
      failure ??= new Error(`cannot write to standard output: ${error.message}`);
    }
  };
  const check = () => {
    if (failure && !readerGone) throw failure;
  };
  stream.on('error', onError);
  const line = options.format === 'text' ? textLine : jsonLine;

  return {
    async write(records: EtlRecord[], writeCtx: SinkWriteContext) {
      check();
      if (readerGone) return;
      let out = '';
      for (let i = 0; i < records.length; i++) {
        const record = records[i] as EtlRecord;
        try {
          out += line(record);
        } catch (error) {
          writeCtx.deadLetter(record, `cannot write: ${(error as Error).message}`);
        }
      }
      if (out.length === 0 || stream.write(out)) return;
      await new Promise<void>((resolve) => {
        const done = () => {
          stream.off('drain', done);
          stream.off('error', done);
          stream.off('close', done);
          resolve();
        };
        stream.on('drain', done);
        stream.on('error', done);
        stream.on('close', done);
      });
      check();
    },
    async flush() {
      check();
    },
    async close() {
      // A broken stream may still emit errors; the listener stays so they never go unhandled.
      if (!readerGone && !failure) stream.off('error', onError);
    },
  };
}

const jsonLine = (record: EtlRecord) => `${JSON.stringify(record)}\n`;
const textLine = (record: EtlRecord) =>
  typeof record.message === 'string' ? `${record.message}\n` : `${JSON.stringify(record)}\n`;
