/**
 * The alert sink against a real HTTP server on loopback that answers as the test tells it: records fold into one
 * alert per key and window with their count; Slack, PagerDuty and webhook bodies; retries on 5xx, a dead letter on
 * a refusal; alerts gathering or on their way when the run stops are in the checkpoint and go after a restart.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAjv } from '../../../engine/schema/ajv.ts';
import type { EtlRecord } from '../../../engine/record.ts';
import { recordingContext } from '../../../test/support/context.ts';
import { AlertSink } from './alert.ts';
import definition from './index.ts';
import { type AlertSinkOptions, schema } from './schema.ts';

interface Received {
  readonly path: string;
  readonly body: Record<string, unknown>;
}
const received: Received[] = [];
/** Statuses to answer with, in turn; 200 once they are used up. */
let script: number[] = [];
let base = '';
const waiters: Array<() => void> = [];

const server = createServer((req: IncomingMessage, res: ServerResponse) => {
  let text = '';
  req.on('data', (c: Buffer) => {
    text += c.toString();
  });
  req.on('end', () => {
    const status = script.shift() ?? 200;
    if (status === 200) received.push({ path: req.url ?? '', body: JSON.parse(text) });
    res.writeHead(status).end(status === 200 ? 'ok' : 'no');
    for (const wake of waiters.splice(0)) wake();
  });
});
beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

function options(extra: Partial<AlertSinkOptions>): AlertSinkOptions {
  const opts: Record<string, unknown> = { channel: 'webhook', url: `${base}/hook`, ...extra };
  createAjv().compile(schema)(opts);
  return opts as AlertSinkOptions;
}

/** A sink on a clock the test moves; its timer is the test calling `sendDue`. */
function make(extra: Partial<AlertSinkOptions>, start = Date.parse('2026-12-05T10:00:00Z')) {
  const clock = { now: start };
  const ctx = recordingContext({ pipeline: 'web', id: 'page' });
  const sink = new AlertSink(options(extra), ctx, { now: () => clock.now, every: () => () => {} });
  return { sink, clock, ctx };
}

const hit = (ip: string, extra: Record<string, unknown> = {}): EtlRecord => ({
  client_ip: ip,
  path: '/wp-login.php',
  ...extra,
});
const bodies = (path = '/hook') => received.filter((r) => r.path === path).map((r) => r.body);

describe('alert sink', () => {
  it('folds the records of a key into one alert per window, sent when it ends, with how many it covers', async () => {
    received.length = 0;
    const { sink, clock } = make({
      group_by: ['client_ip'],
      window_seconds: 300,
      title: '{$count} requests from {client_ip}',
    });
    await sink.open();
    for (let i = 0; i < 600; i++) sink.write([hit('45.9.148.10'), ...(i % 3 === 0 ? [hit('89.248.165.5')] : [])]);
    clock.now += 299_000;
    sink.sendDue();
    await sink.idle();
    expect(received).toHaveLength(0); // the window is not over
    clock.now += 1000;
    sink.sendDue();
    await sink.idle();
    expect(bodies().map((b) => [b.title, b.count])).toEqual([
      ['600 requests from 45.9.148.10', 600],
      ['200 requests from 89.248.165.5', 200],
    ]);
    expect(bodies()[0]).toMatchObject({
      severity: 'warning',
      pipeline: 'web',
      stage: 'page',
      group: { client_ip: '45.9.148.10' },
      first_seen: '2026-12-05T10:00:00.000Z',
      window_seconds: 300,
    });
    // The same address again, after the window: a new alert, sent at the end of the input.
    sink.write([hit('45.9.148.10')]);
    await sink.flush();
    expect(bodies().map((b) => b.count)).toEqual([600, 200, 1]);
    await sink.close();
  });

  it('posts Slack and PagerDuty bodies', async () => {
    received.length = 0;
    const slack = make({ channel: 'slack', url: `${base}/slack`, group_by: ['client_ip'], severity: 'critical' });
    slack.sink.write([hit('1.2.3.4'), hit('1.2.3.4', { path: '<script>' })]);
    await slack.sink.flush();
    const [message] = bodies('/slack');
    expect(message?.text).toBe('[critical] 2 events for client_ip=1.2.3.4');
    expect(JSON.stringify(message?.blocks)).toContain('2 records from 2026-12-05T10:00:00.000Z');

    const pd = make({ channel: 'pagerduty', url: `${base}/pd`, routing_key: 'KEY', title: 'attack on {path}' });
    pd.sink.write([hit('1.2.3.4', { path: '/a' }), hit('5.6.7.8', { path: '/b' })]);
    await pd.sink.flush();
    const [event] = bodies('/pd');
    expect(event).toMatchObject({
      routing_key: 'KEY',
      event_action: 'trigger',
      payload: { summary: 'attack on /b', source: 'etl web', severity: 'warning', custom_details: { count: 2 } },
    });
    expect(String(event?.dedup_key)).toMatch(/^etl\/web\/page\/\[\]\/\d+$/);
  });

  it('retries a 5xx and a 429, and dead-letters an alert refused outright', async () => {
    received.length = 0;
    const { sink, ctx } = make({ max_attempts: 3, group_by: ['client_ip'] });
    script = [503, 429];
    sink.write([hit('1.1.1.1')]);
    await sink.flush();
    expect(bodies().map((b) => b.count)).toEqual([1]);
    script = [400];
    sink.write([hit('2.2.2.2')]);
    await sink.flush();
    const letters: Array<{ record: EtlRecord; reason: string }> = [];
    await sink.prepareCommit(
      { id: 1, positions: {} },
      { deadLetter: (record, reason) => letters.push({ record, reason }) },
    );
    expect(letters).toEqual([{ record: hit('2.2.2.2'), reason: 'alert not delivered to webhook: HTTP 400: no' }]);
    expect(ctx.values.get('etl_alert_failed_total')).toBe(1);
  });

  it('keeps alerts gathering or on their way in its checkpoint, and sends them after a restart', async () => {
    received.length = 0;
    const first = make({ group_by: ['client_ip'], max_attempts: 1 });
    first.sink.write([hit('3.3.3.3'), hit('3.3.3.3'), hit('4.4.4.4')]);
    const state = await first.sink.prepareCommit({ id: 1, positions: {} }, { deadLetter: () => {} });
    // The process dies here: nothing was sent. The rerun restores the checkpoint and sends when the window ends.
    const rerun = make({ group_by: ['client_ip'] });
    await rerun.sink.restore(state);
    rerun.clock.now += 300_000;
    rerun.sink.sendDue();
    await rerun.sink.idle();
    expect(bodies().map((b) => [b.group, b.count])).toEqual([
      [{ client_ip: '3.3.3.3' }, 2],
      [{ client_ip: '4.4.4.4' }, 1],
    ]);
    // An alert on its way at the checkpoint (the server not answering yet) is in it too.
    received.length = 0;
    const slow = make({ group_by: ['client_ip'] });
    script = [503];
    slow.sink.write([hit('5.5.5.5')]);
    slow.clock.now += 300_000;
    slow.sink.sendDue();
    const answered = new Promise<void>((resolve) => waiters.push(resolve));
    await answered;
    const during = (await slow.sink.prepareCommit({ id: 1, positions: {} }, { deadLetter: () => {} })) as {
      sending: unknown[];
    };
    expect(during.sending).toHaveLength(1);
    await slow.sink.close();
  });

  it('sends e-mail through an SMTP server, with the login, and dead-letters a permanent refusal', async () => {
    const mails: Array<{ from: string; to: string[]; data: string; user: string | undefined }> = [];
    let refuse = false;
    const smtp = new SMTPServer({
      authOptional: false,
      allowInsecureAuth: true,
      disabledCommands: ['STARTTLS'],
      onAuth(auth, _session, callback) {
        if (auth.username === 'alerts' && auth.password === 's3cret') callback(null, { user: auth.username });
        else callback(new Error('bad login'));
      },
      onRcptTo(_address, _session, callback) {
        if (refuse) {
          const error = new Error('mailbox unavailable') as Error & { responseCode: number };
          error.responseCode = 550;
          callback(error);
        } else callback();
      },
      onData(stream, session, callback) {
        let data = '';
        stream.on('data', (c: Buffer) => {
          data += c.toString();
        });
        stream.on('end', () => {
          mails.push({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
            data,
            user: session.user as string | undefined,
          });
          callback();
        });
      },
    });
    await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
    const smtpPort = (smtp.server.address() as AddressInfo).port;
    try {
      const { sink } = make({
        channel: 'email',
        url: undefined,
        smtp_url: `smtp://alerts:s3cret@127.0.0.1:${smtpPort}`,
        from: 'etl <alerts@example.com>',
        to: ['oncall@example.com', 'sec@example.com'],
        group_by: ['client_ip'],
        severity: 'critical',
        max_attempts: 2,
      });
      sink.write([hit('9.9.9.9'), hit('9.9.9.9'), hit('9.9.9.9')]);
      await sink.flush();
      expect(mails).toHaveLength(1);
      expect(mails[0]).toMatchObject({
        from: 'alerts@example.com',
        to: ['oncall@example.com', 'sec@example.com'],
        user: 'alerts',
      });
      expect(mails[0]?.data).toContain('Subject: [critical] 3 events for client_ip=9.9.9.9');
      expect(mails[0]?.data).toContain('3 records from 2026-12-05T10:00:00.000Z');
      refuse = true;
      sink.write([hit('8.8.4.4')]);
      await sink.flush();
      const letters: string[] = [];
      await sink.prepareCommit({ id: 1, positions: {} }, { deadLetter: (_r, reason) => letters.push(reason) });
      expect(letters).toHaveLength(1);
      expect(letters[0]).toMatch(/^alert not delivered to email: SMTP 550/);
      await sink.close();
    } finally {
      await new Promise<void>((resolve) => smtp.close(() => resolve()));
    }
  });

  it('is refused by etl validate without its url or routing key, or with a broken title', () => {
    const paths = (o: Partial<AlertSinkOptions>) =>
      definition
        .validate?.({ ...options({}), url: undefined, ...o } as AlertSinkOptions, { inputSchema: undefined })
        ?.map((p) => p.path.join('.'));
    expect(paths({ channel: 'slack' })).toEqual(['channel']);
    expect(paths({ channel: 'pagerduty' })).toEqual(['channel']);
    expect(paths({ channel: 'pagerduty', routing_key: 'k', title: 'a {b' })).toEqual(['title']);
    expect(paths({ channel: 'email', to: ['a@b.c'] })).toEqual(['channel', 'channel']);
  });
});
