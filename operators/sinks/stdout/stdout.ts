/** Writes lines to a stream (stdout by default), honouring its backpressure; EPIPE ends output quietly. */
import type { OperatorContext, Sink } from '../../../engine/operator.ts';
import type { EtlRecord } from '../../../engine/record.ts';
import type { StdoutSinkOptions } from './schema.ts';

export function createStdoutSink(
  options: StdoutSinkOptions,
  ctx: OperatorContext,
  stream: NodeJS.WritableStream = process.stdout,
): Sink {
  let readerGone = false;
  const onError = (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') {
      if (!readerGone) ctx.logger.info('standard output was closed by its reader; discarding further output');
      readerGone = true;
    } else {
      ctx.logger.error(`cannot write to standard output: ${error.message}`);
    }
  };
  stream.on('error', onError);
  const line = options.format === 'text' ? textLine : jsonLine;
  return {
    async write(records: EtlRecord[], writeCtx) {
      if (readerGone) return;
      let out = '';
      for (const record of records) {
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
    },
    async close() {
      stream.off('error', onError);
    },
  };
}

const jsonLine = (record: EtlRecord) => `${JSON.stringify(record)}\n`;
const textLine = (record: EtlRecord) =>
  typeof record.message === 'string' ? `${record.message}\n` : `${JSON.stringify(record)}\n`;
