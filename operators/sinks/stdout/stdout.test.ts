import { PassThrough, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { EtlError, isRetriable } from '../../../engine/errors.ts';
import { recordingContext } from '../../../test/support/context.ts';
import { createStdoutSink } from './stdout.ts';

const noDeadLetters = {
  deadLetter: () => {
    throw new Error('unexpected dead letter');
  },
};

describe('stdout sink', () => {
  it('writes JSON lines, or the message of raw lines as text', async () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (chunk: Buffer) => {
      text += chunk.toString();
    });
    const json = createStdoutSink({ format: 'jsonl' }, recordingContext(), out);
    await json.write([{ a: 1 }], noDeadLetters);
    const plain = createStdoutSink({ format: 'text' }, recordingContext(), out);
    await plain.write([{ message: 'GET / 200' }, { status: 404 }], noDeadLetters);
    expect(text).toBe('{"a":1}\nGET / 200\n{"status":404}\n');
  });

  /**
   * Writes `line` through a stream (of `highWaterMark`) that holds each chunk until released, and checks that the
   * sink acknowledges the batch only once the stream took its bytes. The chunks the stream got, as text.
   */
  async function acknowledgedOnlyOnceTaken(line: Record<string, unknown>, highWaterMark?: number): Promise<string> {
    const chunks: string[] = [];
    let release: (() => void) | undefined;
    let arrived: () => void = () => {};
    const reached = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    const held = new Writable({
      ...(highWaterMark === undefined ? {} : { highWaterMark }),
      write(chunk: Buffer, _enc, callback) {
        chunks.push(chunk.toString());
        release = callback;
        arrived();
      },
    });
    const sink = createStdoutSink({ format: 'jsonl' }, recordingContext(), held);
    let acknowledged = false;
    const writing = Promise.resolve(sink.write([line], noDeadLetters)).then(() => {
      acknowledged = true;
    });
    // The line is with the reader, which has not taken it yet; whatever the sink would do next is done
    // once the pending callbacks have run.
    await reached;
    await new Promise(setImmediate);
    expect(acknowledged).toBe(false);
    release?.();
    await writing;
    expect(acknowledged).toBe(true);
    return chunks.join('');
  }

  it('waits for a slow reader to drain before acknowledging', async () => {
    expect(await acknowledgedOnlyOnceTaken({ long: 'x'.repeat(32) }, 8)).toContain('x'.repeat(32));
  });

  it('acknowledges a batch only once the stream has taken its bytes, however small the batch', async () => {
    // A line far below the high-water mark: `write` returns true at once, yet the bytes are not out.
    expect(await acknowledgedOnlyOnceTaken({ a: 1 })).toBe('{"a":1}\n');
  });

  it('fails the write, later writes and the flush when the reader goes away (EPIPE), with an error not worth a retry', async () => {
    let writes = 0;
    const broken = new Writable({
      write(_chunk, _enc, callback) {
        writes++;
        callback(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      },
    });
    const sink = createStdoutSink({ format: 'jsonl' }, recordingContext(), broken);
    const closed = /standard output was closed by its reader \(EPIPE\)/;
    const first = await Promise.resolve(sink.write([{ a: 1 }], noDeadLetters)).catch((error: unknown) => error);
    expect(first).toBeInstanceOf(EtlError);
    expect((first as EtlError).code).toBe('ETL_OUTPUT_CLOSED');
    expect((first as Error).message).toMatch(closed);
    expect(isRetriable(first)).toBe(false);
    await expect(sink.write([{ a: 2 }], noDeadLetters)).rejects.toThrow(closed);
    await expect(sink.flush?.()).rejects.toThrow(closed);
    await sink.close?.();
    await sink.close?.();
    expect(writes).toBe(1);
    // The stream may still report the error after close: a listener stays, so it never goes unhandled.
    expect(broken.listenerCount('error')).toBeGreaterThan(0);
  });

  it('fails the write, later writes and the flush on another write error, instead of losing output silently', async () => {
    const full = new Writable({
      write(_chunk, _enc, callback) {
        callback(Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }));
      },
    });
    const sink = createStdoutSink({ format: 'jsonl' }, recordingContext(), full);
    await expect(sink.write([{ a: 1 }], noDeadLetters)).rejects.toThrow(/no space left on device/);
    await expect(sink.write([{ a: 2 }], noDeadLetters)).rejects.toThrow(/no space left on device/);
    await expect(sink.flush?.()).rejects.toThrow(/no space left on device/);
    await sink.close?.();
  });

  it('dead-letters a record it cannot serialise', async () => {
    const out = new PassThrough();
    const rejected: string[] = [];
    const sink = createStdoutSink({ format: 'jsonl' }, recordingContext(), out);
    await sink.write([{ big: 1n }, { ok: true }], { deadLetter: (_record, reason) => rejected.push(reason) });
    expect(out.read()?.toString()).toBe('{"ok":true}\n');
    expect(rejected).toEqual([expect.stringMatching(/^cannot write: .*BigInt/)]);
  });
});
