import type { FieldUse, OptionProblem } from '../../../engine/operator.ts';
import { defineSink } from '../../../engine/operator.ts';
import { parseTemplate } from '../../shared/template.ts';
import { type NatsSinkOptions, schema } from './schema.ts';

const defaults = {
  servers: ['nats://127.0.0.1:4222'],
  connect_timeout_seconds: 10,
  publish_timeout_seconds: 10,
  max_pending_publishes: 1024,
} as const satisfies Omit<NatsSinkOptions, 'subject'>;

function templateFields(text: string | undefined, path: string): FieldUse[] {
  if (text === undefined) return [];
  try {
    return parseTemplate(text).fields.map((field) => ({ path: [path], field }));
  } catch {
    return []; // reported by validate
  }
}

export default defineSink<typeof schema, NatsSinkOptions>({
  type: 'nats',
  stability: 'beta',
  summary: 'Publishes records to NATS JetStream, with a message id for the stream\u2019s de-duplication',
  schema,
  accepts: ['any'],
  examples: [
    { ...defaults, subject: 'logs.access' },
    { ...defaults, subject: 'logs.access.{vhost}', message_id: '{request_id}', max_outage_seconds: 600 },
    { ...defaults, subject: 'logs.raw', payload_field: 'message' },
  ],
  fields(options): FieldUse[] {
    return [
      ...templateFields(options.subject, 'subject'),
      ...templateFields(options.message_id, 'message_id'),
      ...(options.payload_field === undefined ? [] : [{ path: ['payload_field'], field: options.payload_field }]),
    ];
  },
  validate(options): OptionProblem[] {
    const problems: OptionProblem[] = [];
    for (const path of ['subject', 'message_id'] as const) {
      const text = options[path];
      if (text === undefined) continue;
      try {
        parseTemplate(text);
      } catch (error) {
        problems.push({ path: [path], message: (error as Error).message });
      }
    }
    if (/[\s*>]/.test(options.subject.replace(/\{[^}]*\}/g, 'x'))) {
      problems.push({
        path: ['subject'],
        message: 'a subject to publish to holds no white space and no wildcard (`*`, `>`)',
      });
    }
    if (options.password !== undefined && options.user === undefined) {
      problems.push({ path: ['password'], message: 'password without user', hint: 'add `user`' });
    }
    return problems;
  },
  create: async (options, ctx) => (await import('./nats.ts')).createNatsSink(options, ctx),
});
