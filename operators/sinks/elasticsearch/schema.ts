import type { FromSchema } from 'json-schema-to-ts';

export const schema = {
  $id: 'https://etl.dev/schemas/operators/sinks/elasticsearch.json',
  type: 'object',
  additionalProperties: false,
  required: ['url'],
  description:
    'Indexes records into Elasticsearch or OpenSearch through the bulk API: an index per day (or a data stream), ' +
    'document ids from the record’s origin so that a replay overwrites instead of adding, per-item failures ' +
    'retried or dead-lettered with their error.',
  properties: {
    url: {
      type: 'string',
      format: 'uri',
      writeOnly: true,
      description: 'The cluster, `https://user:password@es.example.com:9200` (a secret when it holds a password).',
      examples: ['${secret:ELASTICSEARCH_URL}'],
    },
    api_key: {
      type: 'string',
      minLength: 1,
      writeOnly: true,
      description: 'An API key (the base64 `id:key` Elasticsearch gives), instead of a password in the URL.',
      examples: ['${secret:ELASTICSEARCH_API_KEY}'],
    },
    index: {
      type: 'string',
      minLength: 1,
      default: 'etl-{pipeline}-{date}',
      description:
        'The index: `{date}` is the day of `time_field` (UTC, `2026.12.05`; today for a record without one), ' +
        '`{pipeline}` the pipeline’s name, `{field}` a field of the record. With `data_stream: true`, the data ' +
        'stream’s name.',
      examples: ['access-{date}', 'logs-web-default'],
    },
    data_stream: {
      type: 'boolean',
      default: false,
      description: 'Write to a data stream (`create` operations; a document already there is not an error).',
    },
    time_field: {
      type: 'string',
      minLength: 1,
      default: 'timestamp',
      description: 'The event time (ISO-8601 or epoch ms) that picks the day in `{date}`.',
    },
    id: {
      type: 'string',
      minLength: 1,
      default: 'origin',
      description:
        '`origin`: the document id is a hash of where the record was read (source, file, offset or line, queue ' +
        'sequence…), so a replay after a crash overwrites what it wrote; `auto`: Elasticsearch picks ids (a replay ' +
        'adds duplicates); any other value: the field holding the id.',
      examples: ['origin', 'auto', 'request_id'],
    },
    max_attempts: {
      type: 'integer',
      minimum: 1,
      default: 5,
      description:
        'Attempts for items the cluster answers 429 or 5xx for (exponential backoff with jitter); after them, and ' +
        'at once for any other item error (a mapping conflict), the record is dead-lettered with the error.',
    },
    timeout_seconds: {
      type: 'number',
      exclusiveMinimum: 0,
      default: 30,
      description: 'How long one bulk request may take.',
    },
  },
} as const;

export type ElasticsearchSinkOptions = FromSchema<typeof schema, { keepDefaultedPropertiesOptional: false }>;
