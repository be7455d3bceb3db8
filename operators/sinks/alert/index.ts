import { defineSink, type FieldUse, type OptionProblem } from '../../../engine/operator.ts';
import { parseTemplate } from '../../shared/template.ts';
import { type AlertSinkOptions, schema } from './schema.ts';

const defaults = {
  group_by: [] as string[],
  window_seconds: schema.properties.window_seconds.default,
  title: schema.properties.title.default,
  severity: schema.properties.severity.default,
  timeout_seconds: schema.properties.timeout_seconds.default,
  max_attempts: schema.properties.max_attempts.default,
} as const;

/** The record fields a title names (`{$…}` are the alert's own). */
function titleFields(title: string): string[] {
  try {
    return parseTemplate(title).fields.filter((f) => !f.startsWith('$'));
  } catch {
    return [];
  }
}

export default defineSink<typeof schema, AlertSinkOptions>({
  type: 'alert',
  stability: 'alpha',
  summary: 'Grouped, throttled alerts to Slack, PagerDuty, e-mail or a webhook: one per key and window, with its count',
  schema,
  accepts: ['any'],
  examples: [
    { ...defaults, channel: 'slack', url: 'https://hooks.slack.com/services/T000/B000/XXXX', group_by: ['client_ip'] },
    { ...defaults, group_by: [], channel: 'pagerduty', routing_key: 'R0UT1NGKEY', severity: 'critical' },
    { ...defaults, group_by: [], channel: 'webhook', url: 'https://alerts.example.com/etl', window_seconds: 60 },
    {
      ...defaults,
      group_by: [],
      channel: 'email',
      smtp_url: 'smtp://alerts:password@mail.example.com:587',
      from: 'etl <alerts@example.com>',
      to: ['oncall@example.com'],
    },
  ],
  fields(options): FieldUse[] {
    return [
      ...options.group_by.map((field, i) => ({ path: ['group_by', i], field })),
      ...titleFields(options.title).map((field) => ({ path: ['title'], field })),
    ];
  },
  validate(options): OptionProblem[] {
    const problems: OptionProblem[] = [];
    if (options.channel === 'email') {
      for (const key of ['smtp_url', 'from', 'to'] as const) {
        if (options[key] === undefined) {
          problems.push({
            path: ['channel'],
            message: `\`channel: email\` needs \`${key}\``,
            hint: 'smtp_url: ${secret:SMTP_URL}, from: …, to: [ … ]',
          });
        }
      }
    } else if (options.channel !== 'pagerduty' && options.url === undefined) {
      problems.push({
        path: ['channel'],
        message: `\`channel: ${options.channel}\` needs \`url\``,
        hint: 'url: ${secret:SLACK_WEBHOOK_URL}',
      });
    }
    if (options.channel === 'pagerduty' && options.routing_key === undefined) {
      problems.push({
        path: ['channel'],
        message: '`channel: pagerduty` needs `routing_key`, the integration’s key',
        hint: 'routing_key: ${secret:PAGERDUTY_ROUTING_KEY}',
      });
    }
    try {
      parseTemplate(options.title);
    } catch (error) {
      problems.push({ path: ['title'], message: (error as Error).message });
    }
    return problems;
  },
  create: async (options, ctx) => new (await import('./alert.ts')).AlertSink(options, ctx),
});
