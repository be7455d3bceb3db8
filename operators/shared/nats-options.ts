/**
 * The connection options the `nats` source and sink share (JSON Schema properties), and their type. Light: the
 * definitions import it, so the CLI loads it without the NATS client.
 */
export const natsConnectionProperties = {
  servers: {
    type: 'array',
    minItems: 1,
    items: { type: 'string', minLength: 1 },
    default: ['nats://127.0.0.1:4222'],
    description:
      'NATS server URLs (`nats://host:port`); the client connects to one and fails over to the others. A lost ' +
      'connection is reconnected for as long as it takes: the pipeline waits meanwhile.',
    examples: [['nats://127.0.0.1:4222'], ['nats://nats-1:4222', 'nats://nats-2:4222']],
  },
  user: {
    type: 'string',
    minLength: 1,
    description: 'User name, with `password`.',
    examples: ['etl'],
  },
  password: {
    type: 'string',
    minLength: 1,
    writeOnly: true,
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the description shows the interpolation syntax
    description: 'Password of `user`; read it from a secret (`${secret:NATS_PASSWORD}`).',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the example shows the interpolation syntax
    examples: ['${secret:NATS_PASSWORD}'],
  },
  token: {
    type: 'string',
    minLength: 1,
    writeOnly: true,
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the description shows the interpolation syntax
    description: 'Authentication token; read it from a secret (`${secret:NATS_TOKEN}`).',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the example shows the interpolation syntax
    examples: ['${secret:NATS_TOKEN}'],
  },
  connect_timeout_seconds: {
    type: 'number',
    exclusiveMinimum: 0,
    default: 10,
    description:
      'How long the start waits for a server; one never reached fails the run with the reason (a wrong port is not ' +
      'waited for longer).',
    examples: [10],
  },
} as const;

export interface NatsConnectionOptions {
  readonly servers: readonly string[];
  readonly user?: string;
  readonly password?: string;
  readonly token?: string;
  readonly connect_timeout_seconds: number;
}
