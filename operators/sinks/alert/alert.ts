/**
 * The alert sink (Slack, PagerDuty, e-mail, webhook). Records are folded into alerts as they are written: one open alert per key (`group_by`), counting
 * its records and keeping the first and last, until `window_seconds` after its first record; then it is sent (a
 * timer looks every second; the end of the run sends what is open). An attack of thousands of requests is one
 * alert per window that says how many it covers.
 *
 * Durability: a write is acknowledged once its records are folded in; the open alerts are this sink's checkpoint
 * state (`prepareCommit`), so after a crash the rerun restores them and sends them — at least once: an alert sent
 * just before a crash whose checkpoint did not record it goes again (PagerDuty folds it by its `dedup_key`). An
 * alert that cannot be delivered (after `max_attempts`, or refused outright) is dead-lettered, as its last record
 * with the reason, at the next checkpoint.
 */
import type { Transporter } from 'nodemailer';
import { errorMessage } from '../../../engine/errors.ts';
import type { OperatorContext, Sink, SinkWriteContext, Snapshot } from '../../../engine/operator.ts';
import type { EtlRecord } from '../../../engine/record.ts';
import { retry } from '../../../engine/retry.ts';
import { parseTemplate, type Template } from '../../shared/template.ts';
import { PAGERDUTY_EVENTS_URL, type AlertSinkOptions } from './schema.ts';

/** One alert being gathered. */
interface OpenAlert {
  /** The `group_by` values, by field. */
  readonly group: Record<string, unknown>;
  /** When its first record arrived (epoch ms): it is sent `window_seconds` later. */
  readonly opened: number;
  count: number;
  first: number;
  last: number;
  record: EtlRecord;
}

/** What a checkpoint keeps: the alerts not delivered yet, gathering or on their way. */
interface AlertState {
  readonly open: Array<[key: string, alert: OpenAlert]>;
  readonly sending?: Array<[key: string, alert: OpenAlert]>;
}

/** An answer that retrying will not change. */
class Refused extends Error {}

export interface AlertDeps {
  readonly now?: () => number;
  /** Starts the timer that sends due alerts; returns its stop. */
  readonly every?: (ms: number, fn: () => void) => () => void;
}

export class AlertSink implements Sink {
  private readonly options: AlertSinkOptions;
  private readonly ctx: OperatorContext;
  private readonly title: Template;
  private readonly windowMs: number;
  private readonly now: () => number;
  private readonly every: (ms: number, fn: () => void) => () => void;
  private readonly gathering = new Map<string, OpenAlert>();
  /** Alerts that could not be delivered, for the next checkpoint to dead-letter. */
  private failed: Array<{ record: EtlRecord; reason: string }> = [];
  private readonly sending = new Set<Promise<void>>();
  /** Alerts on their way: a checkpoint keeps them until they are delivered or dead-lettered. */
  private readonly inFlight = new Set<[key: string, alert: OpenAlert]>();
  private stopTimer: (() => void) | undefined;
  /** The SMTP transport, made at the first e-mail. */
  private mailer: Transporter | undefined;
  private readonly sent: { inc(value?: number): void };
  private readonly folded: { inc(value?: number): void };
  private readonly undelivered: { inc(value?: number): void };

  constructor(options: AlertSinkOptions, ctx: OperatorContext, deps: AlertDeps = {}) {
    this.options = options;
    this.ctx = ctx;
    this.title = parseTemplate(options.title);
    this.windowMs = options.window_seconds * 1000;
    this.now = deps.now ?? Date.now;
    this.every =
      deps.every ??
      ((ms, fn) => {
        const timer = setInterval(fn, ms);
        timer.unref();
        return () => clearInterval(timer);
      });
    this.sent = ctx.metrics.counter('etl_alert_sent_total', 'Alerts delivered');
    this.folded = ctx.metrics.counter('etl_alert_records_total', 'Records folded into alerts');
    this.undelivered = ctx.metrics.counter('etl_alert_failed_total', 'Alerts that could not be delivered');
  }

  async open(): Promise<void> {
    this.stopTimer = this.every(1000, () => this.sendDue());
  }

  async restore(state: unknown): Promise<void> {
    const saved = state as AlertState | undefined;
    for (const [key, alert] of saved?.open ?? []) this.gathering.set(key, alert);
    // On their way when the run stopped: sent again (at least once).
    for (const [key, alert] of saved?.sending ?? []) this.dispatch(key, alert);
  }

  write(records: EtlRecord[]): void {
    const now = this.now();
    for (const record of records) {
      const group: Record<string, unknown> = {};
      for (const field of this.options.group_by) group[field] = record[field] ?? null;
      const key = JSON.stringify(this.options.group_by.map((f) => group[f]));
      const alert = this.gathering.get(key);
      if (alert && now < alert.opened + this.windowMs) {
        alert.count++;
        alert.last = now;
        alert.record = record;
      } else {
        if (alert) this.dispatch(key, alert); // its window is over: it goes now, this record opens the next
        this.gathering.set(key, { group, opened: now, count: 1, first: now, last: now, record });
      }
    }
    this.folded.inc(records.length);
  }

  /** Sends every alert whose window is over. */
  sendDue(): void {
    const now = this.now();
    for (const [key, alert] of this.gathering) if (now >= alert.opened + this.windowMs) this.dispatch(key, alert);
  }

  async prepareCommit(_snapshot: Snapshot, ctx: SinkWriteContext): Promise<AlertState> {
    for (const { record, reason } of this.failed) ctx.deadLetter(record, reason);
    this.failed = [];
    return {
      open: [...this.gathering].map(([key, alert]) => [key, { ...alert }]),
      sending: [...this.inFlight].map(([key, alert]) => [key, { ...alert }]),
    };
  }

  /** The end of the input: what is open goes now, whatever its window, and is waited for. */
  async flush(): Promise<void> {
    for (const [key, alert] of this.gathering) this.dispatch(key, alert);
    await this.idle();
  }

  async close(): Promise<void> {
    this.stopTimer?.();
    await this.idle();
    this.mailer?.close();
  }

  /** Resolves once no alert is being sent. */
  async idle(): Promise<void> {
    while (this.sending.size > 0) await Promise.allSettled([...this.sending]);
  }

  private dispatch(key: string, alert: OpenAlert): void {
    if (this.gathering.get(key) === alert) this.gathering.delete(key);
    const entry: [string, OpenAlert] = [key, alert];
    this.inFlight.add(entry);
    const sending: Promise<void> = this.deliver(key, alert)
      .then(
        () => {
          this.inFlight.delete(entry);
          this.sent.inc();
        },
        (error: unknown) => {
          // Out of the checkpoint's alerts on their way and into its dead letters in one step.
          this.inFlight.delete(entry);
          this.undelivered.inc();
          const reason = `alert not delivered to ${this.options.channel}: ${errorMessage(error)}`;
          this.ctx.logger.error(reason, { group: alert.group, records: alert.count });
          this.failed.push({ record: alert.record, reason });
        },
      )
      .finally(() => this.sending.delete(sending));
    this.sending.add(sending);
  }

  private deliver(key: string, alert: OpenAlert): Promise<void> {
    const send =
      this.options.channel === 'email'
        ? () => this.mail(alert)
        : () => {
            const { url, body } = this.request(key, alert);
            return this.post(url, body);
          };
    return retry(send, {
      policy: { max_attempts: this.options.max_attempts, initial_backoff_ms: 200, max_backoff_ms: 10_000 },
      signal: this.ctx.signal,
      retriable: (error) => !(error instanceof Refused),
      onRetry: (error) =>
        this.ctx.logger.warn(`alert to ${this.options.channel} failed, retrying: ${errorMessage(error)}`),
    });
  }

  private async post(url: string, body: unknown): Promise<void> {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.any([this.ctx.signal, AbortSignal.timeout(this.options.timeout_seconds * 1000)]),
    });
    const text = await response.text().catch(() => '');
    if (response.ok) return;
    const message = `HTTP ${response.status}${text ? `: ${text.slice(0, 200)}` : ''}`;
    // 429 and 5xx may pass on a later try; any other answer will not.
    if (response.status === 429 || response.status >= 500) throw new Error(message);
    throw new Refused(message);
  }

  /** Sends `alert` as an e-mail; a permanent SMTP refusal (5xx) is not retried, anything else is. */
  private async mail(alert: OpenAlert): Promise<void> {
    const { title, covers } = this.texts(alert);
    this.mailer ??= (await import('nodemailer')).createTransport(this.options.smtp_url as string);
    try {
      await this.mailer.sendMail({
        from: this.options.from,
        to: this.options.to,
        subject: `[${this.options.severity}] ${title}`,
        text:
          `${title}\n\n${covers}\npipeline ${this.ctx.pipeline}, stage ${this.ctx.id}\n\n` +
          `group: ${JSON.stringify(alert.group)}\nlast record:\n${JSON.stringify(alert.record, null, 2)}\n`,
      });
    } catch (error) {
      const code = (error as { responseCode?: number }).responseCode;
      if (code !== undefined && code >= 500) throw new Refused(`SMTP ${code}: ${errorMessage(error)}`);
      throw error;
    }
  }

  /** The alert's title and what it covers, as every channel says them. */
  private texts(alert: OpenAlert): { title: string; covers: string; first: string; last: string } {
    const first = new Date(alert.first).toISOString();
    const last = new Date(alert.last).toISOString();
    const group = Object.entries(alert.group)
      .map(([field, value]) => `${field}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
      .join(', ');
    const title = this.title.fill(
      { ...alert.record, $count: alert.count, $group: group || 'all records', $first: first, $last: last },
      '-',
    );
    const covers = `${alert.count} record${alert.count === 1 ? '' : 's'} from ${first} to ${last}`;
    return { title, covers, first, last };
  }

  /** The request of `alert` on this channel. */
  private request(key: string, alert: OpenAlert): { url: string; body: unknown } {
    const { title, covers, first, last } = this.texts(alert);
    const { channel, severity } = this.options;
    if (channel === 'slack') {
      return {
        url: this.options.url as string,
        body: {
          text: `[${severity}] ${title}`,
          blocks: [
            { type: 'section', text: { type: 'mrkdwn', text: `*[${severity}] ${escapeSlack(title)}*` } },
            {
              type: 'context',
              elements: [
                { type: 'mrkdwn', text: escapeSlack(`${covers} · pipeline ${this.ctx.pipeline} · ${this.ctx.id}`) },
              ],
            },
          ],
        },
      };
    }
    const details = {
      count: alert.count,
      first_seen: first,
      last_seen: last,
      group: alert.group,
      last_record: alert.record,
    };
    if (channel === 'pagerduty') {
      return {
        url: this.options.url ?? PAGERDUTY_EVENTS_URL,
        body: {
          routing_key: this.options.routing_key,
          event_action: 'trigger',
          // One incident per key and window, however often the alert is delivered.
          dedup_key: `etl/${this.ctx.pipeline}/${this.ctx.id}/${key}/${alert.opened}`,
          payload: {
            summary: title.slice(0, 1024),
            source: `etl ${this.ctx.pipeline}`,
            severity,
            timestamp: first,
            component: this.ctx.id,
            custom_details: details,
          },
        },
      };
    }
    return {
      url: this.options.url as string,
      body: {
        title,
        severity,
        pipeline: this.ctx.pipeline,
        stage: this.ctx.id,
        window_seconds: this.options.window_seconds,
        ...details,
      },
    };
  }
}

/** Slack's mrkdwn control characters. */
function escapeSlack(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}
