/** One Kafka client for the `kafka` source and sink, logging through the stage's logger. */
import { Kafka, type KafkaConfig, type LogEntry, logLevel, type SASLOptions } from 'kafkajs';
import type { Logger } from '../../engine/operator.ts';
import type { KafkaConnectionOptions } from './kafka-options.ts';

export function kafkaClient(options: KafkaConnectionOptions, logger: Logger): Kafka {
  const config: KafkaConfig = {
    clientId: options.client_id,
    brokers: [...options.brokers],
    ssl: options.ssl,
    connectionTimeout: options.connect_timeout_seconds * 1000,
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ level, log }: LogEntry) => {
        const { message, timestamp: _timestamp, logger: _logger, ...fields } = log;
        if (level <= logLevel.ERROR) logger.error(`kafka: ${message}`, fields);
        else if (level === logLevel.WARN) logger.warn(`kafka: ${message}`, fields);
        else logger.debug(`kafka: ${message}`, fields);
      },
  };
  if (options.sasl_mechanism !== undefined) {
    config.sasl = {
      mechanism: options.sasl_mechanism,
      username: options.username ?? '',
      password: options.password ?? '',
    } as SASLOptions;
  }
  return new Kafka(config);
}
