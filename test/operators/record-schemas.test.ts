/**
 * Every operator that declares what it emits (`outputSchemas`) is held to it: run on generated and sample input,
 * each record it emits on a port validates against the schema it declared for that port, given its options and
 * the schema of its input. The generic part is here: running a source or a transform and checking what comes
 * out. Each declaring operator needs a case below (what input to give it); a test fails until it has one.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { ValidateFunction } from 'ajv';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { DEAD_LETTER_PORT, outputPorts } from '../../engine/graph/graph.ts';
import type {
  OperatorContext,
  OperatorDefinition,
  PortRecords,
  Source,
  SourceContext,
  SourceDefinition,
  TransformDefinition,
} from '../../engine/operator.ts';
import { deadLetter, type EtlRecord } from '../../engine/record.ts';
import {
  DEAD_LETTER_SCHEMA,
  OPEN_RECORD_SCHEMA,
  RAW_LINE_SCHEMA,
  type RecordSchema,
} from '../../engine/record-schema.ts';
import { detachedState, noopMetrics, silentLogger } from '../../engine/runtime/noop.ts';
import { createAjv, createRecordAjv } from '../../engine/schema/ajv.ts';
import { stage } from '../support/spec.ts';
import { registry } from '../../operators/all.ts';
import { accessRecordSchema, emptyAccessRecord } from '../../operators/shared/log-records.ts';
import { createNatsSource } from '../../operators/sources/nats/nats.ts';
import type { NatsSourceOptions } from '../../operators/sources/nats/schema.ts';
import { createHttpSource } from '../../operators/sources/http/http.ts';
import { createStdinSource } from '../../operators/sources/stdin/stdin.ts';
import type { SftpSourceOptions } from '../../operators/sources/sftp/schema.ts';
import { createSftpSource } from '../../operators/sources/sftp/sftp.ts';
import { type Sshd, sshdMissing, startSshd } from '../../operators/sources/sftp/test-sshd.ts';
import { createKafkaSource } from '../../operators/sources/kafka/kafka.ts';
import type { KafkaSourceOptions } from '../../operators/sources/kafka/schema.ts';
import { createS3Source } from '../../operators/sources/s3/s3.ts';
import { Kafka, logLevel } from 'kafkajs';
import type { S3SourceOptions } from '../../operators/sources/s3/schema.ts';
import { ThrowawayStream } from '../support/nats.ts';
import { TestS3Server } from '../support/s3-server.ts';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { asnRecord, buildMmdb, cityRecord } from '../../operators/transforms/geoip/test-support.ts';

// ------------------------------------------------------------------------------------------ generic part

interface Case {
  /** The operator's options, defaults applied. */
  readonly options: Record<string, unknown>;
  /** For transforms: the schema of the records reaching the stage, and records of that schema. */
  readonly input?: { readonly schema: RecordSchema; readonly records: readonly EtlRecord[] };
  /** For a source whose `create` would reach outside the test (standard input). */
  readonly create?: (options: Record<string, unknown>, ctx: SourceContext) => Source;
}

/** Generated values, and how to turn one into a case (writing files to `dir` if need be). */
interface CaseMaker<T> {
  readonly values: fc.Arbitrary<T>;
  readonly make: (value: T, dir: string) => Case;
  readonly runs: number;
  /** Why the case cannot run on this machine (a server it needs is not installed); the check is then skipped. */
  readonly unavailable?: string;
}

const ajv = createRecordAjv();
const validators = new WeakMap<RecordSchema, ValidateFunction>();
function validatorOf(schema: RecordSchema): ValidateFunction {
  let validate = validators.get(schema);
  if (!validate) {
    validate = ajv.compile(schema);
    validators.set(schema, validate);
  }
  return validate;
}

const scratch = mkdtempSync(join(tmpdir(), 'etl-record-schemas-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** The S3-compatible server of the `s3` source's case, started when that case first runs. */
let s3Server: Promise<TestS3Server> | undefined;
afterAll(async () => {
  await (await s3Server)?.stop();
});

function context(def: OperatorDefinition, options: Record<string, unknown>, input?: RecordSchema): OperatorContext {
  const ports = Object.keys(outputPorts(stage({ id: 'stage', def, options })));
  return {
    pipeline: 'record-schemas',
    id: 'stage',
    logger: silentLogger,
    signal: new AbortController().signal,
    dataDir: scratch,
    baseDir: scratch,
    metrics: noopMetrics,
    requestCheckpoint: () => {},
    readPorts: new Set(ports),
    ...detachedState,
    ...(input === undefined ? {} : { inputSchema: input }),
  };
}

/** What a source emits until it ends; sources emit on their default port. */
async function runSource(def: SourceDefinition, c: Case): Promise<PortRecords> {
  const ctx: SourceContext = { ...context(def, c.options), restoredPosition: undefined, batchMaxRecords: 64 };
  const source = await (c.create ? c.create(c.options, ctx) : def.create(c.options, ctx));
  const records: EtlRecord[] = [];
  try {
    await source.run({
      emit: async (batch) => {
        records.push(...batch);
        return { sent: true, durable: () => Promise.resolve() };
      },
      stopping: new AbortController().signal,
      progress: () => {},
      onCommitted: () => {},
      inputError: (reason) => {
        throw new Error(`input error: ${reason}`);
      },
    });
  } finally {
    await source.close?.();
  }
  return { default: records };
}

/** An http source that takes one POST of `lines` (as text, NDJSON strings or a JSON array), then stops. */
function pushOnce(
  options: Record<string, unknown>,
  ctx: SourceContext,
  value: { lines: string[]; as: 'text' | 'ndjson' | 'json'; gzip: boolean },
): Source {
  return {
    async run(out) {
      const source = await createHttpSource(options as never, ctx);
      const stop = new AbortController();
      const running = source.run({ ...out, stopping: stop.signal });
      try {
        const text =
          value.as === 'text'
            ? value.lines.join('\n')
            : value.as === 'ndjson'
              ? value.lines.map((l) => JSON.stringify(l)).join('\n')
              : JSON.stringify(value.lines);
        const type = { text: 'text/plain', ndjson: 'application/x-ndjson', json: 'application/json' }[value.as];
        const { port } = await source.listening;
        const res = await fetch(`http://127.0.0.1:${port}/ingest`, {
          method: 'POST',
          headers: { 'content-type': type, ...(value.gzip ? { 'content-encoding': 'gzip' } : {}) },
          body: value.gzip ? gzipSync(text) : text,
        });
        if (res.status !== 200) throw new Error(`http source answered ${res.status}: ${await res.text()}`);
      } finally {
        stop.abort();
        await running;
        await source.close();
      }
    },
  };
}

/**
 * What a transform emits on each port for the input records, in batches, then at flush. A transform that does not
 * declare `changesRecords` must leave the records it is given as they were.
 */
async function runTransform(def: TransformDefinition, c: Case): Promise<PortRecords> {
  const input = c.input ?? { schema: OPEN_RECORD_SCHEMA, records: [] };
  const transform = await def.create(c.options, context(def, c.options, input.schema));
  const changes = def.changesRecordsFor?.(c.options) ?? def.changesRecords === true;
  const out: PortRecords = {};
  const add = (ports: PortRecords) => {
    for (const [port, records] of Object.entries(ports)) out[port] = [...(out[port] ?? []), ...records];
  };
  try {
    await transform.open?.();
    for (let i = 0; i < input.records.length; i += 16) {
      const batch = input.records.slice(i, i + 16);
      const before = changes ? undefined : batch.map((r) => ({ ...r }));
      add(await transform.process(batch));
      if (before) expect(batch, `${def.type} changed its input without declaring changesRecords`).toEqual(before);
    }
    if (transform.flush) add(await transform.flush());
  } finally {
    await transform.close?.();
  }
  return out;
}

/** Checks every emitted record against the schema declared for its port; returns how many were checked. */
async function holdsToDeclaration(def: OperatorDefinition, c: Case): Promise<number> {
  const declared =
    def.kind === 'source'
      ? (def.outputSchemas?.(c.options) ?? {})
      : def.kind === 'transform'
        ? (def.outputSchemas?.(c.options, c.input?.schema ?? OPEN_RECORD_SCHEMA) ?? {})
        : {};
  const ports = outputPorts(stage({ id: 'stage', def, options: c.options }));
  const emitted = def.kind === 'source' ? await runSource(def, c) : await runTransform(def as TransformDefinition, c);
  if (def.kind !== 'sink') emitsEachObjectOnce(def, emitted);
  if (def.kind === 'transform') await sameWhenChangedTwice(def as TransformDefinition, c, emitted);
  let checked = 0;
  for (const [port, records] of Object.entries(emitted)) {
    expect(Object.keys(ports), `${def.type} emits on port ${port}, which it does not declare`).toContain(port);
    const schema = port === DEAD_LETTER_PORT ? DEAD_LETTER_SCHEMA : (declared[port] ?? OPEN_RECORD_SCHEMA);
    const validate = validatorOf(schema);
    for (const record of records) {
      const valid = validate(record);
      expect(valid, `${def.type} on ${port}: ${JSON.stringify(validate.errors)} for ${JSON.stringify(record)}`).toBe(
        true,
      );
      checked++;
    }
  }
  return checked;
}

/** Without `sharesRecords`, no object is emitted twice: on two ports, twice on one, or in two batches. */
function emitsEachObjectOnce(def: SourceDefinition | TransformDefinition, emitted: PortRecords): void {
  if (def.sharesRecords === true) return;
  const seen = new Set<EtlRecord>();
  for (const [port, records] of Object.entries(emitted)) {
    for (const record of records) {
      if (seen.has(record))
        expect.fail(`${def.type} emits an object twice (on ${port}) without declaring sharesRecords`);
      seen.add(record);
    }
  }
}

/**
 * A `changesRecords` transform given its own output again (the same objects, as a retry would) emits it unchanged:
 * its changes give the same result when made twice. Dead letters aside (their time differs).
 */
async function sameWhenChangedTwice(def: TransformDefinition, c: Case, emitted: PortRecords): Promise<void> {
  if (!(def.changesRecordsFor?.(c.options) ?? def.changesRecords === true) || c.input === undefined) return;
  const records = emitted.default ?? [];
  const passed = (ports: PortRecords) =>
    Object.fromEntries(
      Object.entries(ports)
        .filter(([port, list]) => port !== DEAD_LETTER_PORT && list.length > 0)
        .map(([port, list]) => [port, list.map((r) => ({ ...r }))]),
    );
  const first = passed(emitted);
  const again = await runTransform(def, { ...c, input: { schema: c.input.schema, records } });
  expect(passed(again), `${def.type} given its own output again`).toEqual(first);
}

function withDefaults(def: OperatorDefinition, options: Record<string, unknown>): Record<string, unknown> {
  const copy = structuredClone(options);
  const validate = createAjv().compile(def.schema);
  if (!validate(copy)) throw new Error(`bad options for ${def.type}: ${JSON.stringify(validate.errors)}`);
  return copy;
}

function definition(kind: OperatorDefinition['kind'], type: string): OperatorDefinition {
  const def = registry.find((d) => d.kind === kind && d.type === type);
  if (!def) throw new Error(`no ${kind} ${type}`);
  return def;
}

// ---------------------------------------------------------------------------------------- the cases

const parseTestdata = fileURLToPath(new URL('../../operators/transforms/parse/testdata/', import.meta.url));
const sampleLines = [
  ...readdirSync(join(parseTestdata, 'corpus'))
    .filter((f) => f.endsWith('.log'))
    .map((f) => `corpus/${f}`),
  ...readdirSync(join(parseTestdata, 'mixed')).map((f) => `mixed/${f}`),
  ...readdirSync(parseTestdata).filter((f) => f.endsWith('.log')),
].flatMap((file) =>
  readFileSync(join(parseTestdata, file), 'utf8')
    .split('\n')
    .filter((l) => l !== ''),
);

/** A real line with random edits, or any text: what a log file may hold. */
const line = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...sampleLines) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.constantFrom(...sampleLines), fc.nat(), fc.nat({ max: 4 }), fc.string({ maxLength: 4 }))
      .map(([l, at, cut, insert]) => {
        const i = at % (l.length + 1);
        return l.slice(0, i) + insert + l.slice(i + cut);
      }),
  },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }).map((s) => s.replace(/[\r\n]/g, ' ')) },
);

const rawLines = fc.array(
  fc
    .tuple(line, fc.boolean())
    .map(([message, truncated]): EtlRecord => (truncated ? { message, truncated } : { message })),
  { minLength: 1, maxLength: 60 },
);

/** Access records (as parse emits them) with values valid and not for the validate rules. */
const accessRecords = fc.array(
  fc
    .record({
      client_ip: fc.option(fc.constantFrom('203.0.113.9', '8.8.8.8', '10.0.0.1', '::1', '2001:4860::8888', 'host', '')),
      status: fc.option(fc.integer({ min: 0, max: 999 })),
      method: fc.option(fc.constantFrom('GET', 'POST', 'BREW', 'get')),
      path: fc.option(
        fc.oneof(
          fc.constantFrom('/', '/api/x', '/a%zz', 'x y', '/users/12/orders/9', '/caf%C3%A9%E9?x=1#f'),
          fc.string(),
        ),
      ),
      query: fc.option(fc.oneof(fc.constantFrom('a=1&b=%zz', '', 'q=x+y&q=z'), fc.string())),
      vhost: fc.option(fc.constantFrom('WWW.Example.COM.', 'example.com', '')),
      request_time_ms: fc.option(fc.double({ min: 0, max: 1e5, noNaN: true })),
      referrer: fc.option(fc.oneof(fc.constantFrom('https://example.com/', 'ftp://x', 'not a url'), fc.string())),
      bytes: fc.option(fc.integer({ min: 0, max: 1e9 })),
      timestamp: fc.option(
        fc.date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true }),
      ),
    })
    .map((r): EtlRecord => ({ ...emptyAccessRecord(), ...r, timestamp: r.timestamp?.toISOString() ?? null })),
  { maxLength: 40 },
);

/** One sshd for the sftp case, started at its first use and stopped after the file's tests. */
let sshd: Promise<Sshd> | undefined;
function sharedSshd(): Promise<Sshd> {
  sshd ??= startSshd();
  return sshd;
}
afterAll(async () => {
  await (await sshd)?.stop();
});

/** Erases the value type: each maker only ever gets its own values. */
function maker<T>(m: CaseMaker<T>): CaseMaker<unknown> {
  return m as unknown as CaseMaker<unknown>;
}

const cases: Record<string, CaseMaker<unknown>> = {
  'source generator': maker({
    values: fc.record({
      format: fc.constantFrom(
        'apache_common',
        'apache_combined',
        'nginx_combined',
        'nginx_combined_request_time',
        'nginx_json',
      ),
      count: fc.integer({ min: 0, max: 300 }),
      seed: fc.integer({ min: 0, max: 1_000_000 }),
      malformed_ratio: fc.double({ min: 0, max: 1, noNaN: true }),
      with_sequence: fc.boolean(),
    }),
    make: (value: Record<string, unknown>) => ({
      options: withDefaults(definition('source', 'generator'), { ...value, start_time: '2026-01-01T00:00:00Z' }),
    }),
    runs: 40,
  }),
  'source file': maker({
    values: fc.record({
      lines: fc.array(line, { maxLength: 40 }),
      crlf: fc.boolean(),
      gzip: fc.boolean(),
      final_newline: fc.boolean(),
      max_line_bytes: fc.integer({ min: 16, max: 300 }),
    }),
    make: (
      value: { lines: string[]; crlf: boolean; gzip: boolean; final_newline: boolean; max_line_bytes: number },
      dir,
    ) => {
      const text = value.lines.join(value.crlf ? '\r\n' : '\n') + (value.final_newline ? '\n' : '');
      const file = join(dir, value.gzip ? 'access.log.gz' : 'access.log');
      writeFileSync(file, value.gzip ? gzipSync(text) : text);
      return {
        options: withDefaults(definition('source', 'file'), {
          paths: [join(dir, '*.log*')],
          max_line_bytes: value.max_line_bytes,
        }),
      };
    },
    runs: 25,
  }),
  'source sftp': maker({
    values: fc.record({
      lines: fc.array(line, { maxLength: 40 }),
      crlf: fc.boolean(),
      gzip: fc.boolean(),
      final_newline: fc.boolean(),
      max_line_bytes: fc.integer({ min: 16, max: 300 }),
    }),
    make: (
      value: { lines: string[]; crlf: boolean; gzip: boolean; final_newline: boolean; max_line_bytes: number },
      dir,
    ) => {
      const text = value.lines.join(value.crlf ? '\r\n' : '\n') + (value.final_newline ? '\n' : '');
      writeFileSync(join(dir, value.gzip ? 'access.log.gz' : 'access.log'), value.gzip ? gzipSync(text) : text);
      return {
        // The case directory is on this machine, which is the SFTP server (a real sshd, started once).
        options: withDefaults(definition('source', 'sftp'), {
          host: '127.0.0.1',
          username: 'etl',
          private_key_path: 'id_ed25519',
          host_key_fingerprint: 'SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s',
          directory: dir,
          max_line_bytes: value.max_line_bytes,
        }),
        create: (options, ctx): Source => {
          let source: Source | undefined;
          return {
            async run(out) {
              const sshd = await sharedSshd();
              source = createSftpSource(
                {
                  ...(options as SftpSourceOptions),
                  port: sshd.port,
                  username: sshd.user,
                  private_key_path: sshd.userKeyPath,
                  host_key_fingerprint: sshd.hostFingerprint,
                },
                ctx,
              );
              await source.run(out);
            },
            close: async () => source?.close?.(),
          };
        },
      };
    },
    runs: 10,
    ...(sshdMissing() === undefined ? {} : { unavailable: sshdMissing() }),
  }),
  'source stdin': maker({
    values: fc.record({
      text: fc.array(line, { maxLength: 40 }).map((lines) => lines.join('\n')),
      max_line_bytes: fc.integer({ min: 16, max: 300 }),
    }),
    make: (value: { text: string; max_line_bytes: number }) => ({
      options: withDefaults(definition('source', 'stdin'), { max_line_bytes: value.max_line_bytes }),
      create: (options, ctx) => createStdinSource(options as never, ctx, Readable.from([Buffer.from(value.text)])),
    }),
    runs: 25,
  }),
  'source nats': maker({
    // Payloads as publishers send them: log lines, and bytes that are not UTF-8.
    values: fc.array(
      fc.oneof(
        line.map((l) => Buffer.from(l)),
        fc.uint8Array({ minLength: 1, maxLength: 40 }),
      ),
      {
        minLength: 1,
        maxLength: 30,
      },
    ),
    make: (payloads: Uint8Array[]) => ({
      options: withDefaults(definition('source', 'nats'), { stream: 'S', consumer: 'c', create_consumer: true }),
      // A throwaway stream holding the payloads; the source is stopped once it has emitted them all.
      create: (options, ctx): Source => ({
        async run(out) {
          const stream = await ThrowawayStream.create('SCHEMA');
          try {
            for (const payload of payloads) await stream.js.publish(`${stream.subject}.x`, payload);
            const source = createNatsSource({ ...(options as NatsSourceOptions), stream: stream.name }, ctx);
            const stop = new AbortController();
            let emitted = 0;
            try {
              await source.run({
                ...out,
                stopping: stop.signal,
                emit: (records, position, bytes) => {
                  emitted += records.length;
                  if (emitted >= payloads.length) stop.abort();
                  return out.emit(records, position, bytes);
                },
              });
            } finally {
              await source.close?.();
            }
          } finally {
            await stream.drop();
          }
        },
      }),
    }),
    runs: 5,
  }),
  'source kafka': maker({
    // Payloads as producers send them: log lines, and bytes that are not UTF-8.
    values: fc.array(
      fc.oneof(
        line.map((l) => Buffer.from(l)),
        fc.uint8Array({ minLength: 1, maxLength: 40 }).map((b) => Buffer.from(b)),
      ),
      { minLength: 1, maxLength: 30 },
    ),
    make: (payloads: Buffer[]) => ({
      options: withDefaults(definition('source', 'kafka'), {
        brokers: (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(','),
        topics: ['etl-schema'],
        group_id: 'etl-schema',
        from_beginning: true,
      }),
      // A topic of its own holding the payloads; the source is stopped once it has emitted them all.
      create: (options, ctx): Source => ({
        async run(out) {
          const suffix = randomBytes(4).toString('hex');
          const topic = `etl-schema-${suffix}`;
          const kafka = new Kafka({
            brokers: [...(options as KafkaSourceOptions).brokers],
            logLevel: logLevel.NOTHING,
          });
          const producer = kafka.producer();
          await producer.connect();
          try {
            await producer.send({ topic, messages: payloads.map((value) => ({ value })) });
          } finally {
            await producer.disconnect();
          }
          const source = createKafkaSource(
            { ...(options as KafkaSourceOptions), topics: [topic], group_id: `etl-schema-${suffix}` },
            ctx,
          );
          const stop = new AbortController();
          let emitted = 0;
          try {
            await source.run({
              ...out,
              stopping: stop.signal,
              emit: (records, position, bytes, batch) => {
                emitted += records.length;
                if (emitted >= payloads.length) stop.abort();
                return out.emit(records, position, bytes, batch);
              },
            });
          } finally {
            await source.close?.();
          }
        },
      }),
    }),
    runs: 3,
    ...(process.env.KAFKA_BROKERS
      ? {}
      : { unavailable: 'needs a Kafka broker: set KAFKA_BROKERS (docker compose up -d kafka)' }),
  }),
  'source s3': maker({
    values: fc.record({ lines: fc.array(line, { minLength: 1, maxLength: 40 }), gzip: fc.boolean() }),
    make: (value: { lines: string[]; gzip: boolean }) => ({
      options: withDefaults(definition('source', 's3'), { bucket: 'placeholder' }),
      // A fresh bucket holding the lines as one object, plain or gzip; the source reads it and ends.
      create: (options, ctx): Source => ({
        async run(out) {
          s3Server ??= TestS3Server.start();
          const server = await s3Server;
          const connection = await server.bucket();
          const client = server.client(connection);
          const text = `${value.lines.join('\n')}\n`;
          await client.send(
            new PutObjectCommand({
              Bucket: connection.bucket,
              Key: value.gzip ? 'access.log.gz' : 'access.log',
              Body: value.gzip ? gzipSync(text) : text,
            }),
          );
          client.destroy();
          const source = createS3Source({ ...(options as S3SourceOptions), ...connection }, ctx);
          try {
            await source.run(out);
          } finally {
            await source.close?.();
          }
        },
      }),
    }),
    runs: 5,
  }),
  'source http': maker({
    values: fc.record({
      lines: fc.array(line, { maxLength: 40 }),
      as: fc.constantFrom('text', 'ndjson', 'json'),
      gzip: fc.boolean(),
    }),
    make: (value: { lines: string[]; as: 'text' | 'ndjson' | 'json'; gzip: boolean }) => ({
      options: withDefaults(definition('source', 'http'), { listen: '127.0.0.1:0' }),
      create: (options, ctx) => pushOnce(options, ctx, value),
    }),
    runs: 25,
  }),
  'transform parse': maker({
    values: fc.record({
      options: fc.constantFrom(...(definition('transform', 'parse').examples as Record<string, unknown>[])),
      records: rawLines,
    }),
    make: (value: { options: Record<string, unknown>; records: EtlRecord[] }) => ({
      options: structuredClone(value.options),
      input: { schema: RAW_LINE_SCHEMA, records: value.records },
    }),
    runs: 150,
  }),
  'transform geoip': maker({
    values: fc.record({
      addresses: fc.array(
        fc.oneof(
          fc.ipV4(),
          fc.ipV6(),
          fc.constantFrom('81.2.69.160', '2a02:cf40::1', '::ffff:8.8.8.8', '10.0.0.1', '-', ''),
          fc.string(),
          fc.constant(null),
        ),
        { minLength: 1, maxLength: 40 },
      ),
      own: fc.boolean(),
      prefix: fc.constantFrom('geo_', 'client_'),
    }),
    make: (value: { addresses: (string | null)[]; own: boolean; prefix: string }, dir) => {
      const files = [join(dir, 'city.mmdb'), join(dir, 'asn.mmdb')];
      if (value.own) {
        const london = cityRecord({ country: 'GB', countryName: 'UK', city: 'London', location: [51.5, -0.09] });
        writeFileSync(files[0] as string, buildMmdb([['81.2.69.0/24', london]]));
        writeFileSync(files[1] as string, buildMmdb([['2a02:cf40::/32', asnRecord(64512, 'AS')]], 'GeoLite2-ASN'));
      }
      return {
        options: withDefaults(definition('transform', 'geoip'), {
          prefix: value.prefix,
          ...(value.own ? { database: files } : {}),
        }),
        input: {
          schema: accessRecordSchema,
          records: value.addresses.map((client_ip) => ({ ...emptyAccessRecord(), client_ip })),
        },
      };
    },
    runs: 30,
  }),
  'transform threat_intel': maker({
    values: fc.record({
      options: fc.constantFrom(
        ...(definition('transform', 'threat_intel').examples as Record<string, unknown>[]).filter(
          // Rule files and AbuseIPDB (a Redis resource) reach outside the test: their own tests cover them.
          (o) => (o.signatures as { files: string[] }).files.length === 0 && o.abuseipdb === undefined,
        ),
      ),
      list: fc.array(fc.constantFrom('192.0.2.0/24 ; SBL1', '2001:db8::/32', '198.51.100.7', 'junk', '# c'), {
        maxLength: 6,
      }),
      records: fc.array(
        fc.record({
          client_ip: fc.constantFrom('192.0.2.9', '2001:db8::1', '198.51.100.7', '203.0.113.1', 'host.example', null),
          path: fc.constantFrom('/', '/.env', '/wp-login.php', '/a/../../etc/passwd', null),
          query: fc.constantFrom("id=1' or '1'='1", 'q=shoes', null),
          user_agent: fc.constantFrom('sqlmap/1.7', 'Mozilla/5.0', null),
          referrer: fc.constantFrom('https://example.com/', null),
        }),
        { minLength: 1, maxLength: 40 },
      ),
    }),
    make: (value: { options: Record<string, unknown>; list: string[]; records: EtlRecord[] }, dir: string): Case => {
      const lists = (value.options.lists as { name: string; path: string }[]).map((l, i) => {
        const path = join(dir, `list-${i}.txt`);
        // A list with no block at all is refused at open; one block, then whatever was drawn.
        writeFileSync(path, ['10.0.0.0/8', ...value.list].join('\n'));
        return { name: l.name, path };
      });
      const schema = {
        type: 'object',
        additionalProperties: false,
        required: ['client_ip', 'path', 'query', 'user_agent', 'referrer'],
        properties: Object.fromEntries(
          ['client_ip', 'path', 'query', 'user_agent', 'referrer'].map((f) => [f, { type: ['string', 'null'] }]),
        ),
      } as const satisfies RecordSchema;
      return {
        options: { ...structuredClone(value.options), lists, reload: { watch: false, interval_seconds: 0 } },
        input: { schema, records: value.records },
      };
    },
    runs: 30,
  }),
  'transform user_agent': maker({
    values: fc.record({
      agents: fc.array(
        fc.oneof(
          fc.constantFrom(
            'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148',
            'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36',
            'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
            'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0 Safari/537.36',
            'curl/8.5.0',
            'kube-probe/1.28',
            '-',
            '',
          ),
          fc.string({ maxLength: 300 }),
          fc.constant(null),
        ),
        { minLength: 1, maxLength: 40 },
      ),
      prefix: fc.constantFrom('ua_', 'agent_'),
      cache_size: fc.constantFrom(0, 3, 1000),
    }),
    make: (value: { agents: (string | null)[]; prefix: string; cache_size: number }) => ({
      options: withDefaults(definition('transform', 'user_agent'), {
        prefix: value.prefix,
        cache_size: value.cache_size,
      }),
      input: {
        schema: accessRecordSchema,
        records: value.agents.map((user_agent) => ({ ...emptyAccessRecord(), user_agent })),
      },
    }),
    runs: 40,
  }),
  'transform validate': maker({
    values: fc.record({
      options: fc.constantFrom(...(definition('transform', 'validate').examples as Record<string, unknown>[])),
      records: accessRecords,
    }),
    make: (value: { options: Record<string, unknown>; records: EtlRecord[] }) => ({
      options: structuredClone(value.options),
      input: { schema: accessRecordSchema as RecordSchema, records: value.records },
    }),
    runs: 60,
  }),
  'transform sessionize': maker({
    values: fc.record({
      // The Redis store's schemas are the same; its example needs a server (sessionize.redis.test.ts).
      options: fc.constantFrom(
        ...(definition('transform', 'sessionize').examples as Record<string, unknown>[]).filter(
          (o) => o.store !== 'redis',
        ),
      ),
      records: fc.array(
        fc.record({
          client_ip: fc.constantFrom('192.0.2.1', '192.0.2.2', null),
          user_agent: fc.constantFrom('curl/8', 'Mozilla/5.0', null),
          user: fc.constantFrom('ann', null),
          // Minutes apart, sometimes back in time; sometimes no time at all.
          timestamp: fc.option(fc.integer({ min: 0, max: 24 * 60 }), { freq: 10 }),
        }),
        { minLength: 1, maxLength: 60 },
      ),
    }),
    make: (value: { options: Record<string, unknown>; records: Array<Record<string, unknown>> }) => {
      const example = accessRecordSchema.examples[0] as EtlRecord;
      const t0 = Date.parse('2026-01-01T00:00:00Z');
      return {
        options: structuredClone(value.options),
        input: {
          schema: accessRecordSchema,
          records: value.records.map((r) => ({
            ...example,
            ...r,
            timestamp: r.timestamp === null ? null : new Date(t0 + (r.timestamp as number) * 60_000).toISOString(),
          })),
        },
      };
    },
    runs: 60,
  }),

  'transform anomalies': maker({
    values: fc.record({
      options: fc.constantFrom(
        ...(definition('transform', 'anomalies').examples as Record<string, unknown>[]).map((o) => ({
          ...o,
          warmup_buckets: 2,
          min_count: 3,
          threshold: 2,
        })),
      ),
      // Per minute, how many requests each client sends (a burst now and then), and some without a time.
      minutes: fc.array(fc.tuple(fc.nat({ max: 4 }), fc.nat({ max: 4 }), fc.boolean()), {
        minLength: 1,
        maxLength: 20,
      }),
      untimed: fc.nat({ max: 3 }),
    }),
    make: (value: { options: Record<string, unknown>; minutes: Array<[number, number, boolean]>; untimed: number }) => {
      const example = accessRecordSchema.examples[0] as EtlRecord;
      const t0 = Date.parse('2026-01-01T00:00:00Z');
      const records: EtlRecord[] = [];
      value.minutes.forEach(([a, b, burst], m) => {
        const at = (i: number) => new Date(t0 + m * 60_000 + i).toISOString();
        for (let i = 0; i < a + (burst ? 40 : 0); i++)
          records.push({ ...example, client_ip: '192.0.2.1', timestamp: at(i) });
        for (let i = 0; i < b; i++) records.push({ ...example, client_ip: null, status: 503, timestamp: at(i) });
      });
      for (let i = 0; i < value.untimed; i++) records.push({ ...example, timestamp: null, status: null });
      return {
        options: withDefaults(definition('transform', 'anomalies'), value.options),
        input: { schema: accessRecordSchema, records },
      };
    },
    runs: 60,
  }),
  'transform anonymize': maker({
    values: fc.record({
      options: fc.constantFrom(...(definition('transform', 'anonymize').examples as Record<string, unknown>[])),
      records: fc.array(
        fc.oneof(
          {
            weight: 4,
            arbitrary: fc
              .record({
                client_ip: fc.option(fc.oneof(fc.ipV4(), fc.ipV6(), fc.constant('host-7.example.net')), { nil: null }),
                user: fc.option(fc.string({ maxLength: 12 }), { nil: null }),
                forwarded_for: fc.option(fc.array(fc.oneof(fc.ipV4(), fc.ipV6(), fc.constant('unknown'))), {
                  nil: null,
                }),
                query: fc.option(fc.string({ maxLength: 40 }), { nil: null }),
                referrer: fc.option(fc.webUrl({ withQueryParameters: true }), { nil: null }),
                extra: fc.dictionary(
                  fc.constantFrom('cookie_session', 'http_x_forwarded_for', 'request_id'),
                  fc.string(),
                ),
              })
              .map((fields): EtlRecord => ({ ...emptyAccessRecord(), ...fields })),
          },
          {
            weight: 1,
            arbitrary: line.map((message) =>
              deadLetter({ message }, 'parsed', `no format fits: ${message.slice(0, 20)}`),
            ),
          },
        ),
        { minLength: 1, maxLength: 40 },
      ),
    }),
    make: (value: { options: Record<string, unknown>; records: EtlRecord[] }) => ({
      options: structuredClone(value.options),
      input: { schema: accessRecordSchema, records: value.records },
    }),
    runs: 60,
  }),
  'transform dedupe': maker({
    values: fc.record({
      options: fc.constantFrom(
        ...(definition('transform', 'dedupe').examples as Record<string, unknown>[]).filter((o) => o.store !== 'redis'),
      ),
      records: fc.array(
        fc.record(
          {
            client_ip: fc.constantFrom('192.0.2.1', '2001:db8::1'),
            path: fc.constantFrom('/', '/a'),
            status: fc.constantFrom(200, 404),
            request_id: fc.constantFrom('r1', 'r2', 'r3'),
            timestamp: fc.constantFrom('2026-01-01T00:00:00Z', '2026-01-01T02:00:00Z', 'not a time'),
          },
          { requiredKeys: ['client_ip', 'path', 'status'] },
        ),
        { maxLength: 40 },
      ),
    }),
    make: (value: { options: Record<string, unknown>; records: EtlRecord[] }) => ({
      options: structuredClone(value.options),
      input: {
        schema: {
          type: 'object',
          properties: {
            client_ip: { type: 'string' },
            path: { type: 'string' },
            status: { type: 'integer' },
            request_id: { type: 'string' },
            timestamp: { type: 'string' },
          },
          required: ['client_ip', 'path', 'status'],
          additionalProperties: false,
        },
        records: value.records,
      },
    }),
    runs: 50,
  }),
  'transform normalize': maker({
    values: fc.record({
      options: fc.constantFrom(...(definition('transform', 'normalize').examples as Record<string, unknown>[])),
      records: accessRecords,
    }),
    make: (value: { options: Record<string, unknown>; records: EtlRecord[] }) => ({
      options: structuredClone(value.options),
      input: { schema: accessRecordSchema as RecordSchema, records: value.records },
    }),
    runs: 60,
  }),
  'transform aggregate': maker({
    values: fc.record({
      options: fc.constantFrom(...(definition('transform', 'aggregate').examples as Record<string, unknown>[])),
      records: fc.array(
        fc.record({
          timestamp: fc
            .integer({ min: 0, max: 7200_000 })
            .map((ms) => new Date(Date.UTC(2026, 0, 1) + ms).toISOString()),
          path: fc.option(fc.constantFrom('/', '/a', '/b?x=1'), { nil: null }),
          vhost: fc.option(fc.constantFrom('example.org', 'shop.example.org'), { nil: null }),
          client_ip: fc.option(fc.constantFrom('203.0.113.7', '198.51.100.1', '2001:db8::1'), { nil: null }),
          status: fc.option(fc.integer({ min: 100, max: 599 }), { nil: null }),
          bytes: fc.option(fc.integer({ min: 0, max: 1e9 }), { nil: null }),
          request_time_ms: fc.option(fc.double({ min: 0, max: 1e6, noNaN: true }), { nil: null }),
        }),
        { minLength: 1, maxLength: 60 },
      ),
    }),
    make: (value: { options: Record<string, unknown>; records: EtlRecord[] }) => ({
      options: structuredClone(value.options),
      input: { schema: accessRecordSchema, records: value.records },
    }),
    runs: 60,
  }),
};

const declaring = registry.filter((def) => def.kind !== 'sink' && def.outputSchemas !== undefined);

describe('declared record schemas', () => {
  it('every operator that declares its output has a case here, and every case an operator', () => {
    expect(Object.keys(cases).sort()).toEqual(declaring.map((def) => `${def.kind} ${def.type}`).sort());
  });

  it.each(declaring.map((def) => [`${def.kind} ${def.type}`, def] as const))(
    '%s: declares schemas for its own ports only, flat and valid JSON Schema, for every example',
    (_name, def) => {
      for (const example of def.examples) {
        const options = structuredClone(example) as Record<string, unknown>;
        const ports = Object.keys(outputPorts(stage({ id: 'stage', def, options })));
        const declared =
          def.kind === 'source'
            ? def.outputSchemas?.(options)
            : (def as TransformDefinition).outputSchemas?.(options, OPEN_RECORD_SCHEMA);
        for (const [port, schema] of Object.entries(declared ?? {})) {
          expect(ports).toContain(port);
          expect(port).not.toBe(DEAD_LETTER_PORT);
          expect(() => validatorOf(schema)).not.toThrow();
          // Records are flat (engine/record-schema.ts): an object field is a bag of open-ended keys.
          for (const [name, field] of Object.entries(schema.properties ?? {})) {
            expect(field.properties, `${def.type}.${port}.${name} nests declared fields`).toBeUndefined();
          }
        }
      }
    },
  );

  it.for(Object.entries(cases))('%s emits only records of the schemas it declares', async ([name, maker], test) => {
    if (maker.unavailable !== undefined) test.skip(maker.unavailable);
    const [kind, type] = name.split(' ') as [OperatorDefinition['kind'], string];
    const def = definition(kind, type);
    let checked = 0;
    await fc.assert(
      fc.asyncProperty(maker.values, async (value) => {
        const caseDir = mkdtempSync(join(scratch, 'case-'));
        try {
          checked += await holdsToDeclaration(def, maker.make(value, caseDir));
        } finally {
          rmSync(caseDir, { recursive: true, force: true });
        }
      }),
      { numRuns: maker.runs },
    );
    expect(checked, 'records checked').toBeGreaterThan(maker.runs);
  });
});
