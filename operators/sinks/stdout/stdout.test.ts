import { PassThrough, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { testContext } from '../file/test-support.ts';
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
    const json = createStdoutSink({ format: 'jsonl' }, testContext(), out);
    await json.write([{ a: 1 }], noDeadLetters);
    const plain = createStdoutSink({ format: 'text' }, testContext(), out);
    await plain.write([{ message: 'GET / 200' }, { status: 404 }], noDeadLetters);
    expect(text).toBe('{"a":1}\nGET / 200\n{"status":404}\n');
  });

  it('waits for a slow reader to drain before acknowledging', async () => {
    const chunks: string[] = [];
    let release: (() => void) | undefined;
    const slow = new Writable({
      highWaterMark: 8,
      write(chunk: Buffer, _enc, callback) {
        chunks.push(chunk.toString());
        release = callback;
      },
    });
    const sink = createStdoutSink({ format: 'jsonl' }, testContext(), slow);
    let acknowledged = false;
    const writing = Promise.resolve(sink.write([{ long: 'x'.repeat(32) }], noDeadLetters)).then(() => {
      acknowledged = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(acknowledged).toBe(false);
    release?.();
    await writing;
    expect(acknowledged).toBe(true);
    expect(chunks.join('')).toContain('x'.repeat(32));
  });

  it('ends quietly when the reader goes away (EPIPE)', async () => {
    const broken = new Writable({
      write(_chunk, _enc, callback) {
        callback(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      },
    });
    const sink = createStdoutSink({ format: 'jsonl' }, testContext(), broken);
    await sink.write([{ a: 1 }], noDeadLetters);
    await new Promise((resolve) => setImmediate(resolve));
    await sink.write([{ a: 2 }], noDeadLetters);
    await sink.close?.();
  });
});
