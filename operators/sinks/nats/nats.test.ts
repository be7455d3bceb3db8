/** The nats sink against the local JetStream: payloads, subjects, message ids, dead letters, de-duplication. */
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { afterAll, describe, expect, it } from 'vitest';
import type { Sink } from '../../../engine/operator.ts';
import { type EtlRecord, ORIGIN } from '../../../engine/record.ts';
import { startEtl } from '../../../test/support/cli.ts';
import { recordingContext } from '../../../test/support/context.ts';
import { accessLines, NATS_URL, ThrowawayStream } from '../../../test/support/nats.ts';
import { until } from '../../../test/support/until.ts';
import definition from './index.ts';
import { createNatsSink } from './nats.ts';
import type { NatsSinkOptions } from './schema.ts';

const ajv = new Ajv({ useDefaults: true, strict: false });
const validate = ajv.compile(definition.schema);

function options(patch: Record<string, unknown>): NatsSinkOptions {
  const value = { servers: [NATS_URL], ...structuredClone(patch) };
  if (!validate(value)) throw new Error(ajv.errorsText(validate.errors));
  return value as unknown as NatsSinkOptions;
}

const cleanups: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function throwaway(config: { max_msg_size?: number } = {}): Promise<ThrowawayStream> {
  const stream = await ThrowawayStream.create('SINK', config);
  cleanups.push(() => stream.drop());
  return stream;
}

async function opened(patch: Record<string, unknown>) {
  const ctx = recordingContext({ id: 'out', pipeline: 'p' });
  const sink: Sink = createNatsSink(options(patch), ctx);
  cleanups.push(() => sink.close?.());
  await sink.open?.();
  const rejected: Array<{ record: EtlRecord; reason: string }> = [];
  const write = (records: EtlRecord[]) =>
    sink.write(records, { deadLetter: (record, reason) => rejected.push({ record, reason }) });
  return { ctx, sink, rejected, write };
}

describe('nats sink definition', () => {
  it('refuses a broken template, a wildcard subject and a password without user', () => {
    const problems = (patch: Record<string, unknown>) =>
      definition.validate?.(options(patch), { inputSchema: undefined }).map((p) => p.message) ?? [];
    expect(problems({ subject: 'logs.{vhost' })).toEqual([expect.stringContaining('opens no `{field}`')]);
    expect(problems({ subject: 'logs.>' })).toEqual([expect.stringContaining('no wildcard')]);
    expect(problems({ subject: 'logs', password: 'x' })).toEqual(['password without user']);
    expect(problems({ subject: 'logs.{vhost}', message_id: '{request_id}' })).toEqual([]);
  });
});

describe('nats sink', () => {
  it('publishes records as JSON on their subject, or one field as the payload, waiting for the stream', async () => {
    const stream = await throwaway();
    const { write, rejected, ctx } = await opened({ subject: `${stream.subject}.{vhost}`, message_id: '{id}' });
    await write([
      { id: 1, vhost: 'a', path: '/x', big: 12n },
      { id: 2, vhost: 'b', path: '/y' },
    ]);
    expect(rejected).toEqual([]);
    expect(await stream.read()).toEqual([
      { subject: `${stream.subject}.a`, data: '{"id":1,"vhost":"a","path":"/x","big":"12"}', id: '1' },
      { subject: `${stream.subject}.b`, data: '{"id":2,"vhost":"b","path":"/y"}', id: '2' },
    ]);
    // The same records again (a retry, a rerun): the stream keeps one of each.
    await write([{ id: 1, vhost: 'a', path: '/x', big: 12n }]);
    expect(await stream.messages()).toBe(2);
    expect(ctx.values.get('etl_nats_duplicate_publishes_total')).toBe(1);

    const raw = await opened({ subject: `${stream.subject}.raw`, payload_field: 'message' });
    await raw.write([{ message: 'GET / 200', [ORIGIN]: { source: 'in', file: '/a.log', offset: 0, line: 1 } }]);
    const last = (await stream.read()).at(-1);
    expect(last).toEqual({ subject: `${stream.subject}.raw`, data: 'GET / 200', id: 'p/in//a.log/0/1' });
  });

  it('dead-letters, one by one, records it cannot publish and those the stream refuses', async () => {
    const stream = await throwaway({ max_msg_size: 200 });
    const { write, rejected, ctx } = await opened({ subject: `${stream.subject}.{vhost}` });
    await write([
      { vhost: 'ok', n: 1 },
      { n: 2 },
      { vhost: 'has space', n: 3 },
      { vhost: 'big', n: 4, pad: 'x'.repeat(500) },
      { vhost: 'ok', n: 5 },
    ]);
    expect(rejected.map((r) => [r.record.n, r.reason])).toEqual([
      [2, 'the subject template needs `vhost`, which the record lacks'],
      [3, `\`${stream.subject}.has space\` is not a subject to publish to`],
      [4, expect.stringMatching(/^NATS refused the message: .*(size|maximum)/i)],
    ]);
    expect((await stream.read()).map((m) => JSON.parse(m.data).n)).toEqual([1, 5]);
    // No origin and no message_id: published without an id, and said once.
    expect(ctx.values.get('etl_nats_published_without_id_total')).toBe(3);
    expect(ctx.logs.filter((l) => l.message.includes('without a message id'))).toHaveLength(1);
  });

  it('de-duplicates what a rerun after SIGKILL publishes again: the stream holds every line once', async () => {
    const stream = await throwaway();
    const dir = mkdtempSync(join(tmpdir(), 'etl-nats-sink-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const lines = accessLines(8_000);
    // Half the lines before the kill, the rest after it: the first run cannot have published them all.
    writeFileSync(join(dir, 'access.log'), `${lines.slice(0, 4_000).join('\n')}\n`);
    const pipeline = join(dir, 'pipeline.yaml');
    writeFileSync(
      pipeline,
      `apiVersion: etl/v1
kind: Pipeline
metadata: { name: nats-sink }
spec:
  settings: { data_dir: ${join(dir, '.etl')}, checkpoint_interval_seconds: 3600, batch_max_records: 200 }
  sources:
    input: { type: file, paths: ["${join(dir, 'access.log')}"], follow: true }
  sinks:
    out: { type: nats, inputs: [input], servers: [${NATS_URL}], subject: ${stream.subject}.raw, payload_field: message }
`,
    );
    // No checkpoint in the first run: everything it published is read and published again by the rerun. The source
    // follows the file, so the run is still going when it is killed however fast it published (a finite run could
    // end first), and the second half of the lines is written only after the kill.
    const first = startEtl(['apply', '--no-progress', pipeline]);
    await until(async () => (await stream.messages()) >= 1000, 'a first thousand messages');
    first.child.kill('SIGKILL');
    expect((await first.done).signal).toBe('SIGKILL');
    const published = await stream.messages();
    expect(published).toBeLessThan(lines.length);
    appendFileSync(join(dir, 'access.log'), `${lines.slice(4_000).join('\n')}\n`);
    const second = startEtl(['apply', '--no-progress', pipeline]);
    await until(async () => (await stream.messages()) >= lines.length, 'every line published');
    second.child.kill('SIGINT');
    const stopped = await second.done;
    expect(stopped.code, stopped.stderr).toBe(0);
    const stored = await stream.read();
    expect(stored.length).toBe(lines.length);
    expect(new Set(stored.map((m) => m.data)).size).toBe(lines.length);
  });
});
