import { PassThrough, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { Logger } from '../../../engine/operator.ts';
import { silentLogger } from '../../../engine/runtime/noop.ts';
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

  it('waits for a slow reader to drain before acknowledging', async () => {
    const chunks: string[] = [];
    let release: (() => void) | undefined;
    let arrived: () => void = () => {};
    const reached = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    const slow = new Writable({
      highWaterMark: 8,
      write(chunk: Buffer, _enc, callback) {
        chunks.push(chunk.toString());
        release = callback;
        arrived();
      },
    });
    const sink = createStdoutSink({ format: 'jsonl' }, recordingContext(), slow);
    let acknowledged = false;
    const writing = Promise.resolve(sink.write([{ long: 'x'.repeat(32) }], noDeadLetters)).then(() => {
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
    expect(chunks.join('')).toContain('x'.repeat(32));
  });

  it('ends quietly when the reader goes away (EPIPE): one log line, later batches dropped', async () => {
    let writes = 0;
    const broken = new Writable({
      write(_chunk, _enc, callback) {
        writes++;
        callback(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      },
    });
    const lines: string[] = [];
    const logger: Logger = { ...silentLogger, info: (message) => lines.push(message) };
    const sink = createStdoutSink({ format: 'jsonl' }, recordingContext({ logger }), broken);
    await sink.write([{ a: 1 }], noDeadLetters);
    await new Promise((resolve) => setImmediate(resolve));
    await sink.write([{ a: 2 }], noDeadLetters);
    await sink.write([{ a: 3 }], noDeadLetters);
    await sink.close?.();
    await sink.close?.();
    expect(writes).toBe(1);
    expect(lines).toEqual(['standard output was closed by its reader; discarding further output']);
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
