/**
 * The connection options the `kafka` source and sink share (JSON Schema properties), and their type. Light: the
 * definitions import it, so the CLI loads it without the Kafka client.
 */
export const kafkaConnectionProperties = {
  brokers: {
    type: 'array',
    minItems: 1,
    items: { type: 'string', minLength: 1, pattern: '^[^\\s/]+:\\d+$' },
    default: ['127.0.0.1:9092'],
    description: 'Bootstrap brokers as `host:port`; the client learns the rest of the cluster from them.',
    examples: [['127.0.0.1:9092'], ['kafka-1:9092', 'kafka-2:9092']],
  },
  client_id: {
    type: 'string',
    minLength: 1,
    default: 'etl',
    description: 'Client id the brokers log and quota by.',
    examples: ['etl'],
  },
  ssl: {
    type: 'boolean',
    default: false,
    description: 'Connect with TLS (the system CAs verify the brokers).',
    examples: [true],
  },
  sasl_mechanism: {
    type: 'string',
    enum: ['plain', 'scram-sha-256', 'scram-sha-512'],
    description: 'SASL authentication with `username` and `password`; absent: none.',
    examples: ['scram-sha-512'],
  },
  username: {
    type: 'string',
    minLength: 1,
    description: 'SASL user name, with `sasl_mechanism`.',
    examples: ['etl'],
  },
  password: {
    type: 'string',
    minLength: 1,
    writeOnly: true,
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the description shows the interpolation syntax
    description: 'SASL password; read it from a secret (`${secret:KAFKA_PASSWORD}`).',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the example shows the interpolation syntax
    examples: ['${secret:KAFKA_PASSWORD}'],
  },
  connect_timeout_seconds: {
    type: 'number',
    exclusiveMinimum: 0,
    default: 10,
    description: 'How long a connection attempt to a broker may take.',
    examples: [10],
  },
} as const;

export interface KafkaConnectionOptions {
  readonly brokers: readonly string[];
  readonly client_id: string;
  readonly ssl: boolean;
  readonly sasl_mechanism?: 'plain' | 'scram-sha-256' | 'scram-sha-512';
  readonly username?: string;
  readonly password?: string;
  readonly connect_timeout_seconds: number;
}

/** Cross-field checks of the connection options, for the definitions' `validate`. */
export function kafkaConnectionProblems(
  options: KafkaConnectionOptions,
): Array<{ path: string[]; message: string; hint: string }> {
  const sasl = options.sasl_mechanism !== undefined;
  const problems: Array<{ path: string[]; message: string; hint: string }> = [];
  if (sasl && (options.username === undefined || options.password === undefined)) {
    problems.push({
      path: ['sasl_mechanism'],
      message: 'sasl_mechanism needs username and password',
      hint: 'add both',
    });
  }
  if (!sasl && (options.username !== undefined || options.password !== undefined)) {
    problems.push({
      path: [options.username !== undefined ? 'username' : 'password'],
      message: 'username and password are used only with sasl_mechanism',
      hint: 'set sasl_mechanism',
    });
  }
  return problems;
}
