/**
 * Crash loop through the CLI with the http source's write-ahead buffer: `etl apply` (http with `buffer` → parse →
 * postgres server) takes requests from 8 concurrent clients and is SIGKILLed 10 times at random points, each time
 * shortly after answering a few requests 200; each rerun replays what was answered but not committed. In the end
 * every line answered 200 is in the table exactly once, no line answered otherwise than 200 and unanswered ones at
 * most once, and no line twice. The buffer does not wait for commits, so kills land between an answer and its commit.
 * A second `etl apply` given the same buffer directory while the first runs is refused.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { prng } from '../support/random.ts';
import { until } from '../support/until.ts';
import { ETL } from './cli.ts';
import { PG_URL, serverQuery } from './helpers.ts';

const CLIENTS = 8;
const LINES_PER_REQUEST = 200;
const KILLS = 10;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface Run {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  readonly listening: Promise<void>;
  stderr(): string;
}

/** `etl apply`, with its info log read for the line saying it listens. */
function apply(pipeline: string): Run {
  const child = spawn(process.execPath, [ETL, 'apply', '--no-progress', pipeline], {
    env: { ...process.env, ETL_LOG_LEVEL: 'info', DATABASE_URL: '' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  let listened!: () => void;
  const listening = new Promise<void>((resolve) => {
    listened = resolve;
  });
  child.stderr?.on('data', (c: Buffer) => {
    err += c.toString();
    if (err.includes('listening on')) listened();
  });
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  return { child, exited, listening, stderr: () => err };
}

function request(seq: number): Buffer {
  const lines: string[] = [];
  for (let i = 0; i < LINES_PER_REQUEST; i++) {
    const n = seq * LINES_PER_REQUEST + i;
    lines.push(`203.0.113.${n % 250} - - [10/Oct/2026:13:55:36 +0000] "GET /item/${n} HTTP/1.1" 200 ${i}`);
  }
  return gzipSync(lines.join('\n'));
}

/** What became of the requests sent. */
interface Outcomes {
  /** Answered 200: each of their lines must be stored once. */
  readonly acked: Set<number>;
  /** Answered otherwise (503 while stopping or full): none of their lines may be stored. */
  readonly refused: Set<number>;
  /** No answer (the process died): stored once or not at all. */
  readonly unanswered: Set<number>;
}

/**
 * Clients post requests (each with its own lines) until `stop()`; the process dying under them leaves their
 * request unanswered. Resolves with nothing; `outcomes` fills in.
 */
function clients(url: string, outcomes: Outcomes, next: () => number, onAck: () => void) {
  let stopping = false;
  const one = async () => {
    while (!stopping) {
      const seq = next();
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'text/plain', 'content-encoding': 'gzip' },
          body: request(seq),
        });
        await res.arrayBuffer();
        if (res.status === 200) {
          outcomes.acked.add(seq);
          onAck();
        } else {
          outcomes.refused.add(seq);
          // Back off as Retry-After asks (1 s is the source's default; the test keeps it short).
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      } catch {
        outcomes.unanswered.add(seq);
        return;
      }
    }
  };
  const all = Promise.all(Array.from({ length: CLIENTS }, one));
  return {
    done: all,
    stop: () => {
      stopping = true;
      return all;
    },
  };
}

describe('http source with a write-ahead buffer through etl apply', () => {
  let dir: string | undefined;
  let schema: string | undefined;
  afterEach(async () => {
    if (schema) await serverQuery(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    if (dir) await rm(dir, { recursive: true, force: true });
    schema = undefined;
  });

  it('SIGKILLed 10 times while 8 clients push, every line answered 200 is stored exactly once', async () => {
    dir = await mkdtemp(join(tmpdir(), 'etl-http-wal-'));
    schema = `etl_wal_${randomBytes(4).toString('hex')}`;
    const port = await freePort();
    const pipeline = join(dir, 'pipeline.yaml');
    const wal = join(dir, 'wal');
    const document = `apiVersion: etl/v1
kind: Pipeline
metadata: { name: walcrash }
spec:
  settings: { data_dir: ${join(dir, '.etl')}, checkpoint_interval_seconds: 0.05, batch_max_records: 500 }
  sources:
    pushed:
      type: http
      listen: 127.0.0.1:${port}
      buffer: { path: ${wal}, max_bytes: 33554432, segment_bytes: 262144 }
  operators:
    parsed: { type: parse, inputs: [pushed], format: common }
  sinks:
    store: { type: postgres, inputs: [parsed], url: "${PG_URL}", schema: ${schema}, table: access_logs }
`;
    await writeFile(pipeline, document);
    const url = `http://127.0.0.1:${port}/ingest`;
    const outcomes: Outcomes = { acked: new Set(), refused: new Set(), unanswered: new Set() };
    const table = `"${schema}".access_logs`;
    const count = async () =>
      ((await serverQuery(`SELECT count(*)::int AS n FROM ${table}`).catch(() => []))[0]?.n as number) ?? 0;
    let killsBeforeCommit = 0;
    let seq = 0;
    const random = prng(1313);
    for (let kill = 0; kill < KILLS; kill++) {
      const run = apply(pipeline);
      await Promise.race([
        run.listening,
        run.exited.then((code) => Promise.reject(new Error(`exited ${code}: ${run.stderr()}`))),
      ]);
      if (kill === 0) {
        // Another process (its own pipeline, data directory, port and table) given the same buffer directory is refused.
        const other = join(dir, 'other.yaml');
        await writeFile(
          other,
          document
            .replace('name: walcrash', 'name: walother')
            .replace(join(dir, '.etl'), join(dir, '.etl-other'))
            .replace('table: access_logs', 'table: other_logs')
            .replace(`127.0.0.1:${port}`, `127.0.0.1:${await freePort()}`),
        );
        const refused = apply(other);
        expect(await refused.exited).not.toBe(0);
        expect(refused.stderr()).toContain(join(wal, 'lock'));
      }
      // Killed once a random number of requests (2 to 12) have been answered 200 in this run.
      const target = 2 + Math.floor(random() * 11);
      let acks = 0;
      let reached!: () => void;
      const enough = new Promise<void>((resolve) => {
        reached = resolve;
      });
      const load = clients(
        url,
        outcomes,
        () => seq++,
        () => {
          if (++acks >= target) reached();
        },
      );
      await enough;
      run.child.kill('SIGKILL');
      await run.exited;
      await load.stop();
      // Lines answered 200 that no commit covered when the process died: only the buffer holds them.
      if ((await count()) < outcomes.acked.size * LINES_PER_REQUEST) killsBeforeCommit++;
    }
    expect(outcomes.acked.size).toBeGreaterThanOrEqual(KILLS * 2);
    expect(killsBeforeCommit).toBeGreaterThan(0);

    // A last run replays what is left, then stops on SIGTERM.
    const last = apply(pipeline);
    await last.listening;
    const ackedLines = outcomes.acked.size * LINES_PER_REQUEST;
    // The acknowledged lines themselves: lines of requests left unanswered may be stored too, so the table's whole
    // count reaches this number before the replay is over (and a stop then leaves the rest in the buffer).
    const ackedStored = async () =>
      ((
        await serverQuery(
          `SELECT count(*)::int AS n FROM ${table} WHERE substring(path from '/item/(\\d+)')::int / $1 = ANY($2::int[])`,
          [LINES_PER_REQUEST, [...outcomes.acked]],
        ).catch(() => [])
      )[0]?.n as number) ?? 0;
    await until(async () => (await ackedStored()) >= ackedLines, 'the acknowledged lines in the table', 120_000);
    last.child.kill('SIGTERM');
    expect(await last.exited, last.stderr()).toBe(0);

    const rows = await serverQuery(
      `SELECT substring(path from '/item/(\\d+)')::int AS n, count(*)::int AS times FROM ${table} GROUP BY 1`,
    );
    const stored = new Map(rows.map((r) => [r.n as number, r.times as number]));
    expect([...stored.values()].filter((times) => times !== 1)).toEqual([]);
    const requestsStored = new Set([...stored.keys()].map((n) => Math.floor(n / LINES_PER_REQUEST)));
    const missing = [...outcomes.acked].filter((s) => !requestsStored.has(s));
    expect(missing).toEqual([]);
    for (const s of outcomes.acked) {
      for (let i = 0; i < LINES_PER_REQUEST; i++) expect(stored.get(s * LINES_PER_REQUEST + i)).toBe(1);
    }
    expect([...outcomes.refused].filter((s) => requestsStored.has(s))).toEqual([]);
    const unknown = [...requestsStored].filter((s) => !outcomes.acked.has(s) && !outcomes.unanswered.has(s));
    expect(unknown).toEqual([]);
    // Committed segments were deleted: at most the one being written and one before it remain.
    const segments = (await readdir(wal)).filter((name) => name.endsWith('.wal'));
    expect(segments.length).toBeLessThanOrEqual(2);
  });
});
