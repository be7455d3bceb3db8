/**
 * kill -9 in the middle of sessions, through the real CLI: a file → parse → sessionize pipeline loading a file and
 * the PostgreSQL server is killed at varying points and rerun until done; every line must come out exactly once
 * in both, with the session id, sequence and start an uninterrupted run gives it. Keys outnumber `max_sessions`,
 * so eviction happens across the kills too, and some lines come out of order within the bound and some later.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { startEtl } from '../../../test/support/cli.ts';
import { PG_URL, serverQuery } from '../../../test/postgres/helpers.ts';
import { prng } from '../../../test/support/random.ts';

const LINES = 120_000;
const CLIENTS = 400;
const KILLS = 8;

const made: string[] = [];
const SCHEMA = `etl_sessionize_${process.pid}`;
afterAll(async () => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
  await serverQuery(`DROP SCHEMA IF EXISTS "${SCHEMA}" CASCADE`);
});

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
function clf(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

const input = (() => {
  const random = prng(11);
  const lines: string[] = [];
  let t = Date.parse('2026-03-01T00:00:00Z');
  for (let i = 0; i < LINES; i++) {
    t += Math.floor(random() * 1500);
    // Mostly in order; some a little back (within max_out_of_order_seconds: 30), a few far back (late).
    const r = random();
    const at = r < 0.05 ? t - Math.floor(random() * 30_000) : r < 0.052 ? t - 120_000 : t;
    // A few busy clients and a long tail, so that sessions of every length are open at any kill.
    const client = random() < 0.5 ? Math.floor(random() * 20) : Math.floor(random() * CLIENTS);
    const agent = client % 3 === 0 ? 'curl/8.5' : 'Mozilla/5.0';
    lines.push(
      `10.1.${client >> 8}.${client & 255} - - [${clf(at)}] "GET /p?seq=${i} HTTP/1.1" 200 ${i % 900} "-" "${agent}"`,
    );
  }
  return `${lines.join('\n')}\n`;
})();

/** The pipeline: to a file, and with `server`, to a table of the PostgreSQL server as well. */
function setup(server = false): { pipeline: string; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'etl-sessionize-kill-'));
  made.push(dir);
  writeFileSync(join(dir, 'access.log'), input);
  const output = join(dir, 'out.jsonl');
  const pipeline = join(dir, 'pipeline.yaml');
  writeFileSync(
    pipeline,
    `apiVersion: etl/v1
kind: Pipeline
metadata: { name: sessions }
spec:
  settings: { data_dir: ${join(dir, '.etl')}, checkpoint_interval_seconds: 0.05, batch_max_records: 500 }
  sources:
    logs: { type: file, paths: ["${join(dir, 'access.log')}"] }
  operators:
    parsed: { type: parse, inputs: [logs], format: combined }
    visits:
      type: sessionize
      inputs: [parsed]
      gap_seconds: 300
      max_out_of_order_seconds: 30
      max_sessions: 150
  sinks:
    out: { type: file, inputs: [visits], path: ${output}, format: jsonl }
${server ? `    db: { type: postgres, inputs: [visits], url: "${PG_URL}", schema: ${SCHEMA}, table: visits }\n` : ''}`,
  );
  return { pipeline, output };
}

interface Placed {
  session_id: string | null;
  session_seq: number | null;
  session_start: string | null;
}

/** What each input line got, by its `seq`; fails on a line missing or repeated. */
function placements(output: string): Placed[] {
  const out = new Array<Placed | undefined>(LINES);
  for (const line of readFileSync(output, 'utf8').split('\n')) {
    if (line === '') continue;
    const r = JSON.parse(line) as Placed & { query: string };
    const seq = Number(/seq=(\d+)/.exec(r.query)?.[1]);
    expect(out[seq], `line seq=${seq} repeated`).toBeUndefined();
    out[seq] = { session_id: r.session_id, session_seq: r.session_seq, session_start: r.session_start };
  }
  expect(out.filter((p) => p !== undefined)).toHaveLength(LINES);
  return out as Placed[];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const sizeOf = (path: string) => (existsSync(path) ? statSync(path).size : 0);

it(`assigns the session ids of an uninterrupted run through up to ${KILLS} SIGKILLs`, async () => {
  const straight = setup();
  const once = await startEtl(['apply', '--no-progress', straight.pipeline]).done;
  expect(once.stderr).toMatch(/outcome\s+succeeded/);
  const expected = placements(straight.output);
  // The input does reach what matters: evictions, late lines, long sessions.
  expect(once.stderr).toMatch(/max_sessions \(150\) reached/);
  expect(expected.filter((p) => p.session_id === null).length).toBeGreaterThan(100);
  expect(Math.max(...expected.map((p) => p.session_seq ?? 0))).toBeGreaterThan(50);

  const killed = setup(true);
  let kills = 0;
  let finished = false;
  for (let attempt = 0; attempt < 40 && !finished; attempt++) {
    const run = startEtl(['apply', '--no-progress', killed.pipeline]);
    let exited = false;
    void run.done.then(() => {
      exited = true;
    });
    if (kills < KILLS) {
      // Once output is flowing (past start-up), at a varying point after: each run gets a little further.
      const start = sizeOf(killed.output);
      while (!exited && sizeOf(killed.output) <= start) await sleep(5);
      await sleep((attempt * 37) % 150);
      if (!exited) run.child.kill('SIGKILL');
    }
    const result = await run.done;
    if (result.signal === 'SIGKILL') kills++;
    else {
      expect(result.stderr).toMatch(/outcome\s+succeeded/);
      finished = true;
    }
  }
  expect(finished).toBe(true);
  expect(kills).toBeGreaterThanOrEqual(KILLS / 2);
  const same = (got: Placed[]) => {
    let differing = 0;
    for (let i = 0; i < LINES; i++) {
      if (JSON.stringify(got[i]) !== JSON.stringify(expected[i])) {
        differing++;
        if (differing <= 3) expect(got[i], `line seq=${i}`).toEqual(expected[i]);
      }
    }
    expect(differing).toBe(0);
  };
  same(placements(killed.output));
  // The server's rows: typed columns (timestamptz, bigint), one per line.
  const rows = await serverQuery(
    `SELECT query, session_id, session_seq::int AS session_seq, session_start FROM "${SCHEMA}".visits`,
  );
  expect(rows).toHaveLength(LINES);
  const stored = new Array<Placed>(LINES);
  for (const row of rows) {
    const seq = Number(/seq=(\d+)/.exec(row.query as string)?.[1]);
    expect(stored[seq], `row seq=${seq} repeated`).toBeUndefined();
    const start = row.session_start as Date | null;
    stored[seq] = {
      session_id: row.session_id as string | null,
      session_seq: row.session_seq as number | null,
      session_start: start === null ? null : start.toISOString(),
    };
  }
  same(stored);
});
