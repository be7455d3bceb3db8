import type { FromSchema } from 'json-schema-to-ts';
import { kafkaConnectionProperties } from '../../shared/kafka-options.ts';

export const schema = {
  $id: 'https://etl.dev/schemas/operators/sources/kafka.json',
  type: 'object',
  additionalProperties: false,
  required: ['topics', 'group_id'],
  description:
    'Reads Kafka topics as a member of a consumer group; each message becomes `{ message }` (its value as text) ' +
    'with its topic, partition and offset in the origin. Several `etl` instances with the same `group_id` split the ' +
    "partitions. A partition's position advances only once every sink downstream has committed its batches; into " +
    'PostgreSQL it is stored per partition with the rows, and the instance assigned a partition resumes from there ' +
    '(exactly once, also across instances). Offsets are committed to Kafka as well, for lag tooling.',
  properties: {
    ...kafkaConnectionProperties,
    topics: {
      type: 'array',
      minItems: 1,
      uniqueItems: true,
      items: { type: 'string', minLength: 1, pattern: '^[A-Za-z0-9._-]+$' },
      description: 'Topics to read.',
      examples: [['access-logs']],
    },
    group_id: {
      type: 'string',
      minLength: 1,
      description:
        'Consumer group. Every `etl` instance given the same group shares the partitions; it also names the ' +
        "partitions' stored positions (`kafka/<group>/<topic>/<partition>`).",
      examples: ['etl-loader'],
    },
    from_beginning: {
      type: 'boolean',
      default: true,
      description:
        'Where a partition with no stored position and no offset committed in Kafka starts: its first message ' +
        '(true) or messages produced from now on (false).',
      examples: [false],
    },
    session_timeout_seconds: {
      type: 'number',
      minimum: 6,
      default: 30,
      description:
        'How long the group coordinator waits for a silent member before it moves its partitions to the others.',
      examples: [30],
    },
    max_bytes_per_partition: {
      type: 'integer',
      minimum: 1024,
      default: 1048576,
      description: 'Bytes fetched per partition per request: bounds what the client holds ahead of the pipeline.',
      examples: [1048576],
    },
  },
} as const;

export type KafkaSourceOptions = FromSchema<typeof schema, { keepDefaultedPropertiesOptional: false }>;
