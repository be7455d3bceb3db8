/**
 * The elasticsearch sink through the official client against a local HTTP server that answers the bulk API as a
 * cluster does (the product header, NDJSON bodies, gzip, per-item results): daily indices, ids from the origin,
 * items answered 429 sent again alone, a mapping error dead-lettered with its reason, data streams' `create`, and a
 * replay overwriting what it wrote. The real server comes up in docker-compose (`elasticsearch`); it does not run here.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EtlRecord, ORIGIN } from '../../../engine/record.ts';
import { createAjv } from '../../../engine/schema/ajv.ts';
import { recordingContext } from '../../../test/support/context.ts';
import { ElasticsearchSink } from './elasticsearch.ts';
import definition from './index.ts';
import { type ElasticsearchSinkOptions, schema } from './schema.ts';

/** What the "cluster" holds, by index and id. */
const stored = new Map<string, Map<string, unknown>>();
const requests: Array<{ action: string; index: string; id: string | undefined }[]> = [];
/** Per-item answers to force, by the document's `n`, `times` times each (once by default). */
let force = new Map<number, { status: number; type: string; reason: string; times?: number }>();
let autoId = 0;

function answer(req: IncomingMessage, res: ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const raw = Buffer.concat(chunks);
    const text = (req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw).toString();
    res.setHeader('x-elastic-product', 'Elasticsearch');
    res.setHeader('content-type', 'application/json');
    if (req.method !== 'POST' || !req.url?.startsWith('/_bulk')) {
      res.end(JSON.stringify({ name: 'local', version: { number: '8.15.0' }, tagline: 'You Know, for Search' }));
      return;
    }
    const lines = text.split('\n').filter(Boolean);
    const seen: Array<{ action: string; index: string; id: string | undefined }> = [];
    const items: unknown[] = [];
    for (let i = 0; i < lines.length; i += 2) {
      const header = JSON.parse(lines[i] as string) as Record<string, { _index: string; _id?: string }>;
      const action = Object.keys(header)[0] as string;
      const meta = header[action] as { _index: string; _id?: string };
      const doc = JSON.parse(lines[i + 1] as string) as { n: number };
      seen.push({ action, index: meta._index, id: meta._id });
      const forced = force.get(doc.n);
      if (forced) {
        forced.times = (forced.times ?? 1) - 1;
        if (forced.times <= 0) force.delete(doc.n);
        items.push({
          [action]: { _index: meta._index, status: forced.status, error: { type: forced.type, reason: forced.reason } },
        });
        continue;
      }
      const id = meta._id ?? `auto-${autoId++}`;
      const index = stored.get(meta._index) ?? new Map();
      stored.set(meta._index, index);
      if (action === 'create' && index.has(id)) {
        items.push({
          create: {
            _index: meta._index,
            _id: id,
            status: 409,
            error: { type: 'version_conflict_engine_exception', reason: 'exists' },
          },
        });
        continue;
      }
      index.set(id, doc);
      items.push({ [action]: { _index: meta._index, _id: id, status: 201, result: 'created' } });
    }
    requests.push(seen);
    res.end(JSON.stringify({ took: 1, errors: items.some((x) => Object.values(x as object)[0].error), items }));
  });
}

const server = createServer(answer);
let url = '';
beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

function make(extra: Partial<ElasticsearchSinkOptions> = {}) {
  const opts: Record<string, unknown> = { url, ...extra };
  createAjv().compile(schema)(opts);
  const ctx = recordingContext({ pipeline: 'web', id: 'search' });
  return { sink: new ElasticsearchSink(opts as ElasticsearchSinkOptions, ctx), ctx };
}

const doc = (n: number, day = '2026-12-05'): EtlRecord => ({
  n,
  timestamp: `${day}T10:00:00.000Z`,
  path: '/x',
  [ORIGIN]: { source: 'logs', file: '/var/log/access.log', offset: n * 100, line: n + 1 },
});

async function write(sink: ElasticsearchSink, records: EtlRecord[]) {
  const letters: Array<{ n: unknown; reason: string }> = [];
  await sink.write(records, { deadLetter: (record, reason) => letters.push({ n: record.n, reason }) });
  return letters;
}

describe('elasticsearch sink', () => {
  it('indexes into an index per day with ids from the origin; a replay overwrites, never adds', async () => {
    stored.clear();
    const { sink, ctx } = make();
    await sink.open();
    expect(await write(sink, [doc(1), doc(2), doc(3, '2026-12-06')])).toEqual([]);
    expect([...stored.keys()].sort()).toEqual(['etl-web-2026.12.05', 'etl-web-2026.12.06']);
    expect(stored.get('etl-web-2026.12.05')?.size).toBe(2);
    await write(sink, [doc(1), doc(2), doc(3, '2026-12-06')]);
    expect(stored.get('etl-web-2026.12.05')?.size).toBe(2);
    expect(stored.get('etl-web-2026.12.06')?.size).toBe(1);
    expect(ctx.values.get('etl_elasticsearch_indexed_total')).toBe(6);
    await sink.close();
  });

  it('sends again, alone, the items answered 429 or 503, and dead-letters a mapping error with its reason', async () => {
    stored.clear();
    requests.length = 0;
    const { sink, ctx } = make({ index: 'access-{date}' });
    await sink.open();
    force = new Map([
      [2, { status: 429, type: 'es_rejected_execution_exception', reason: 'queue full' }],
      [3, { status: 400, type: 'mapper_parsing_exception', reason: 'failed to parse field [path]' }],
      [4, { status: 503, type: 'unavailable_shards_exception', reason: 'primary not active' }],
    ]);
    const letters = await write(sink, [doc(1), doc(2), doc(3), doc(4)]);
    expect(letters).toEqual([
      {
        n: 3,
        reason: 'elasticsearch refused the document (400) mapper_parsing_exception: failed to parse field [path]',
      },
    ]);
    expect(requests.map((r) => r.length)).toEqual([4, 2]);
    expect(stored.get('access-2026.12.05')?.size).toBe(3);
    expect(ctx.values.get('etl_elasticsearch_item_retries_total')).toBe(2);
    await sink.close();
  });

  it('dead-letters an item still failing after max_attempts', async () => {
    stored.clear();
    requests.length = 0;
    const { sink } = make({ max_attempts: 2 });
    await sink.open();
    force = new Map([[7, { status: 503, type: 'unavailable_shards_exception', reason: 'down', times: 2 }]]);
    expect(await write(sink, [doc(7), doc(8)])).toEqual([
      { n: 7, reason: 'elasticsearch refused the document (503) unavailable_shards_exception: down' },
    ]);
    expect(requests.map((r) => r.length)).toEqual([2, 1]);
    await sink.close();
  });

  it('writes to a data stream with create, a document already there being no error', async () => {
    stored.clear();
    requests.length = 0;
    const { sink } = make({ index: 'logs-web-default', data_stream: true });
    await sink.open();
    expect(await write(sink, [doc(1), doc(2)])).toEqual([]);
    expect(await write(sink, [doc(1)])).toEqual([]);
    expect(requests.flat().every((r) => r.action === 'create' && r.index === 'logs-web-default')).toBe(true);
    expect(stored.get('logs-web-default')?.size).toBe(2);
    await sink.close();
  });

  it('lets the cluster choose ids without a locator in the origin, or takes them from a field', async () => {
    stored.clear();
    requests.length = 0;
    const { sink } = make({ index: 'plain' });
    await sink.open();
    await write(sink, [
      { n: 1, [ORIGIN]: { source: 'push' } },
      { n: 2, request_id: 'r-2', [ORIGIN]: { source: 'push' } },
    ]);
    expect(requests.flat().map((r) => r.id)).toEqual([undefined, undefined]);
    // A queue message delivered again has the same id: its delivery count is not where it was read.
    const queued = (deliveries: number): EtlRecord => ({
      n: 9,
      [ORIGIN]: { source: 'queue', file: 'LOGS', sequence: 41, deliveries } as EtlRecord[typeof ORIGIN],
    });
    await write(sink, [queued(1), queued(2)]);
    const [first, second] = requests.flat().slice(-2);
    expect(first?.id).toEqual(expect.any(String));
    expect(second?.id).toBe(first?.id);
    await sink.close();
    const byField = make({ index: 'plain', id: 'request_id' });
    await byField.sink.open();
    await write(byField.sink, [{ n: 2, request_id: 'r-2' }]);
    expect(requests.flat().at(-1)?.id).toBe('r-2');
    await byField.sink.close();
  });

  it('is refused by etl validate with a broken index template', () => {
    const problems = definition.validate?.(
      { ...(definition.examples[0] as ElasticsearchSinkOptions), index: 'a-{b' },
      {
        inputSchema: undefined,
      },
    );
    expect(problems?.map((p) => p.path)).toEqual([['index']]);
  });
});
