/**
 * `etl top` and `etl tap` in a real terminal (tmux: the commands run in a pane, the test reads the screen with
 * capture-pane and types with send-keys) against a running `etl apply` of a generator → parse → blackhole pipeline
 * that serves metrics on a port of the test's own.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../support/until.ts';
import { ETL_BIN, startEtl } from '../support/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'etl-top-'));
const session = `etl-top-${process.pid}`;
let port = 0;
let run: ReturnType<typeof startEtl>;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/** A tmux server of the test's own (its own socket), so that its options touch no one else's. */
const tmux = (...args: string[]) => execFileSync('tmux', ['-L', session, ...args], { encoding: 'utf8' });
const screen = (target: string) => tmux('capture-pane', '-p', '-J', '-S', '-200', '-t', target);

/** Waits until the pane shows what `test` accepts (a terminal has no event for it). */
function shows(target: string, test: (text: string) => boolean, what: string): Promise<string> {
  return until(
    () => {
      const text = screen(target);
      return test(text) ? text : '';
    },
    `the screen to show ${what}`,
    30_000,
  );
}

/**
 * Waits until the command in the pane has ended, and returns its exit status: the shell that runs it prints
 * `exit=<status>` after it (tmux's own pane status is not always set when the pane is seen dead).
 */
async function ended(target: string): Promise<string> {
  const text = await shows(target, (t) => /exit=\d+/.test(t), 'the command ending');
  return /exit=(\d+)/.exec(text)?.[1] as string;
}

beforeAll(async () => {
  port = await freePort();
  writeFileSync(
    join(dir, 'live.yaml'),
    `apiVersion: etl/v1
kind: Pipeline
metadata: { name: live }
spec:
  settings: { data_dir: ${join(dir, '.etl')} }
  telemetry: { metrics: { prometheus_port: ${port} } }
  sources:
    gen: { type: generator, format: nginx_combined, rate_per_second: 400, malformed_ratio: 0.05 }
  operators:
    parsed: { type: parse, inputs: [gen], format: auto }
  sinks:
    out: { type: blackhole, inputs: [parsed] }
`,
  );
  run = startEtl(['apply', '--no-progress', join(dir, 'live.yaml')]);
  // Serving metrics once the run is up.
  await until(
    () =>
      fetch(`http://127.0.0.1:${port}/metrics`).then(
        (r) => r.ok,
        () => false,
      ),
    'the pipeline to serve metrics',
    30_000,
  );
  tmux('new-session', '-d', '-s', session, '-x', '160', '-y', '40');
  // A pane whose command ended stays, with its screen and exit status, for the test to read.
  tmux('set-option', '-g', 'remain-on-exit', 'on');
});

afterAll(async () => {
  try {
    tmux('kill-server');
  } catch {}
  run?.child.kill('SIGINT');
  await run?.done;
  rmSync(dir, { recursive: true, force: true });
});

/** `etl <args>` for a pane, followed by its exit status on the screen. */
const command = (...args: string[]) =>
  `${[process.execPath, ETL_BIN, ...args].map((a) => `'${a}'`).join(' ')}; echo exit=$?`;

describe('etl top', () => {
  it('shows each stage with its rates, refreshes, and quits on q', async () => {
    tmux(
      'new-window',
      '-t',
      session,
      '-n',
      'top',
      command('top', '--url', `http://127.0.0.1:${port}`, '--interval', '0.5'),
    );
    const text = await shows(
      `${session}:top`,
      (t) => /live\s+parsed\s+transform\s+parse\s+[1-9]/.test(t) && /live\s+gen\s+source\s+generator\s+[1-9]/.test(t),
      'the stages with a rate above 0',
    );
    expect(text).toContain('etl top — http://127.0.0.1:');
    expect(text).toMatch(/PIPELINE\s+STAGE\s+KIND\s+TYPE\s+IN\/S\s+OUT\/S\s+ERRORS \(TOTAL\)\s+DEAD LETTERS \(TOTAL\)/);
    expect(text).toContain('q: quit');
    expect(text).toMatch(/live\s+out\s+sink\s+blackhole/);
    expect(text).toMatch(/RSS \d+ MiB/);
    tmux('send-keys', '-t', `${session}:top`, 'q');
    // Quit: the command ends with 0 and leaves the alternate screen (the frames are gone from the pane).
    expect(await ended(`${session}:top`)).toBe('0');
    expect(screen(`${session}:top`)).not.toContain('PIPELINE');
  });
});

describe('etl tap', () => {
  it('prints sampled records of a port as JSON lines, at the rate asked, then stops at the limit', async () => {
    tmux(
      'new-window',
      '-t',
      session,
      '-n',
      'tap',
      // The address as copied from /metrics works too.
      command('tap', 'parsed', '--url', `http://127.0.0.1:${port}/metrics`, '--rate', '5', '--limit', '3'),
    );
    expect(await ended(`${session}:tap`)).toBe('0');
    // Long lines wrap on the screen: read them as the pane printed them, joined.
    const joined = tmux('capture-pane', '-p', '-J', '-S', '-200', '-t', `${session}:tap`)
      .split('\n')
      .filter((l) => l.startsWith('{"pipeline"'));
    expect(joined).toHaveLength(3);
    for (const line of joined) {
      const sample = JSON.parse(line);
      expect(sample).toMatchObject({ pipeline: 'live', stage: 'parsed', port: 'default' });
      expect(sample.record.client_ip).toEqual(expect.any(String));
      expect(sample.origin).toMatchObject({ source: 'gen' });
    }
  });

  it('names what can be tapped when the stage or port is not there', async () => {
    tmux(
      'new-window',
      '-t',
      session,
      '-n',
      'wrong',
      command('tap', 'parsed.nope', '--url', `http://127.0.0.1:${port}`),
    );
    expect(await ended(`${session}:wrong`)).toBe('1');
    const text = tmux('capture-pane', '-p', '-J', '-S', '-200', '-t', `${session}:wrong`);
    expect(text.replace(/\s+/g, ' ')).toContain(
      'no stage parsed with port nope runs here; stages: live/gen (default); live/parsed (default, error_log, dead_letter)',
    );
  });
});
