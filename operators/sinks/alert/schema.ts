import type { FromSchema } from 'json-schema-to-ts';

export const PAGERDUTY_EVENTS_URL = 'https://events.pagerduty.com/v2/enqueue';

export const schema = {
  $id: 'https://etl.dev/schemas/operators/sinks/alert.json',
  type: 'object',
  additionalProperties: false,
  required: ['channel'],
  description:
    'Sends alerts to Slack, PagerDuty, e-mail or a webhook, grouped: the records of one key (`group_by`) within a window ' +
    'make one alert that says how many they are, sent when the window ends.',
  properties: {
    channel: {
      type: 'string',
      enum: ['slack', 'pagerduty', 'email', 'webhook'],
      description:
        '`slack`: an incoming webhook. `pagerduty`: the Events API v2 (a `trigger` per alert, deduplicated by ' +
        'key and window). `email`: a message through an SMTP server (`smtp_url`, `from`, `to`). `webhook`: a JSON ' +
        'POST of the alert to `url`.',
      examples: ['slack'],
    },
    url: {
      type: 'string',
      format: 'uri',
      writeOnly: true,
      description:
        'Where alerts are posted: the Slack incoming-webhook URL (a secret: read it from `${secret:…}`), the ' +
        'webhook, or another PagerDuty events endpoint (default: PagerDuty’s).',
      examples: ['${secret:SLACK_WEBHOOK_URL}'],
    },
    routing_key: {
      type: 'string',
      minLength: 1,
      writeOnly: true,
      description: 'PagerDuty: the integration’s routing key (a secret).',
      examples: ['${secret:PAGERDUTY_ROUTING_KEY}'],
    },
    smtp_url: {
      type: 'string',
      pattern: '^smtps?://',
      writeOnly: true,
      description:
        'email: the SMTP server, `smtp://user:password@host:587` (STARTTLS when the server offers it) or ' +
        '`smtps://…:465` (TLS from the start). A secret: it holds the password.',
      examples: ['${secret:SMTP_URL}'],
    },
    from: {
      type: 'string',
      minLength: 3,
      description: 'email: the sender, `etl <alerts@example.com>`.',
      examples: ['etl <alerts@example.com>'],
    },
    to: {
      type: 'array',
      minItems: 1,
      items: { type: 'string', minLength: 3 },
      description: 'email: the recipients.',
      examples: [['oncall@example.com']],
    },
    group_by: {
      type: 'array',
      items: { type: 'string', minLength: 1 },
      default: [],
      description: 'The fields whose values make an alert’s key: one alert per key and window. Empty: one per window.',
      examples: [['client_ip']],
    },
    window_seconds: {
      type: 'number',
      exclusiveMinimum: 0,
      default: 300,
      description:
        'How long a key’s alert gathers records (processing time, from its first record) before it is sent; its ' +
        'next record after that opens the next alert.',
      examples: [300],
    },
    title: {
      type: 'string',
      minLength: 1,
      default: '{$count} events for {$group}',
      description:
        'The alert’s one-line text: `{field}` is the field of the window’s last record (`-` when absent), ' +
        '`{$count}` the records it covers, `{$group}` the key as `field=value, …`, `{$first}` and `{$last}` when ' +
        'the first and last arrived (ISO-8601).',
      examples: ['{$count} requests from {client_ip} ({threat_categories})'],
    },
    severity: {
      type: 'string',
      enum: ['critical', 'error', 'warning', 'info'],
      default: 'warning',
      description: 'PagerDuty’s severity; shown in Slack and webhook alerts too.',
    },
    timeout_seconds: {
      type: 'number',
      exclusiveMinimum: 0,
      default: 10,
      description: 'How long one POST may take.',
    },
    max_attempts: {
      type: 'integer',
      minimum: 1,
      default: 5,
      description:
        'Attempts per alert (exponential backoff with jitter between them) on a network error, a timeout, 429 or ' +
        '5xx; then, and at once on any other answer, the alert’s last record is dead-lettered with the reason.',
    },
  },
} as const;

export type AlertSinkOptions = FromSchema<typeof schema, { keepDefaultedPropertiesOptional: false }>;
