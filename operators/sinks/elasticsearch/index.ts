import { defineSink, type FieldUse, type OptionProblem } from '../../../engine/operator.ts';
import { parseTemplate } from '../../shared/template.ts';
import { type ElasticsearchSinkOptions, schema } from './schema.ts';

const defaults = {
  index: schema.properties.index.default,
  data_stream: schema.properties.data_stream.default,
  time_field: schema.properties.time_field.default,
  id: schema.properties.id.default,
  max_attempts: schema.properties.max_attempts.default,
  timeout_seconds: schema.properties.timeout_seconds.default,
} as const;

/** Names in `{…}` of the index template that are record fields (`date` and `pipeline` are the sink's own). */
function indexFields(index: string): string[] {
  try {
    return parseTemplate(index).fields.filter((f) => f !== 'date' && f !== 'pipeline');
  } catch {
    return [];
  }
}

export default defineSink<typeof schema, ElasticsearchSinkOptions>({
  type: 'elasticsearch',
  stability: 'alpha',
  summary:
    'Indexes records into Elasticsearch/OpenSearch with the bulk API: daily indices, idempotent ids, item errors dead-lettered',
  schema,
  accepts: ['any'],
  concurrent: true,
  examples: [
    { ...defaults, url: 'https://es.example.com:9200', api_key: 'aWQ6a2V5' },
    { ...defaults, url: 'http://127.0.0.1:9200', index: 'logs-web-default', data_stream: true },
    { ...defaults, url: 'http://127.0.0.1:9200', index: 'access-{vhost}-{date}', id: 'request_id' },
  ],
  fields(options): FieldUse[] {
    const uses: FieldUse[] = indexFields(options.index).map((field) => ({ path: ['index'], field }));
    if (options.id !== 'origin' && options.id !== 'auto') uses.push({ path: ['id'], field: options.id });
    return uses;
  },
  validate(options): OptionProblem[] {
    try {
      parseTemplate(options.index);
    } catch (error) {
      return [{ path: ['index'], message: (error as Error).message }];
    }
    if (options.data_stream && options.index.includes('{date}')) {
      return [
        {
          path: ['index'],
          message: 'a data stream is one name over time: `{date}` has no place in it',
          hint: 'index: logs-web-default',
          severity: 'warning',
        },
      ];
    }
    return [];
  },
  create: async (options, ctx) => new (await import('./elasticsearch.ts')).ElasticsearchSink(options, ctx),
});
