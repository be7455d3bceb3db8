/** A stand-in OTLP/HTTP collector on 127.0.0.1: records what is POSTed to /v1/traces. */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedExport {
  readonly contentType: string | undefined;
  readonly body: Buffer;
}

export interface FakeCollector {
  readonly url: string;
  readonly exports: ReceivedExport[];
  close(): Promise<void>;
}

/** `respond: false` accepts requests and never answers them (a collector that hangs). */
export async function startCollector(options: { respond?: boolean } = {}): Promise<FakeCollector> {
  const exports: ReceivedExport[] = [];
  const server: Server = createServer((request, response) => {
    readBody(request).then((body) => {
      if (request.method !== 'POST' || request.url !== '/v1/traces') {
        response.writeHead(404).end();
        return;
      }
      exports.push({ contentType: request.headers['content-type'], body });
      if (options.respond === false) return;
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    exports,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function readBody(request: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => resolve(Buffer.concat(chunks)));
    request.on('error', reject);
  });
}

export interface OtlpAttribute {
  key: string;
  value: { stringValue?: string; intValue?: string | number; doubleValue?: number; boolValue?: boolean };
}

/** A span as OTLP/JSON carries it, with the attributes of its resource. */
export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  flags?: number;
  attributes: OtlpAttribute[];
  links?: { traceId: string; spanId: string }[];
  status?: { code?: number; message?: string };
  events?: { name: string; attributes: OtlpAttribute[] }[];
  resource: OtlpAttribute[];
}

/** Every span the collector received, decoded from OTLP/JSON. */
export function receivedSpans(collector: FakeCollector): ReceivedSpan[] {
  return collector.exports.flatMap((e) => {
    const body = JSON.parse(e.body.toString('utf8')) as {
      resourceSpans: {
        resource: { attributes: OtlpAttribute[] };
        scopeSpans: { spans: Omit<ReceivedSpan, 'resource'>[] }[];
      }[];
    };
    return body.resourceSpans.flatMap((r) =>
      r.scopeSpans.flatMap((s) => s.spans.map((span) => ({ ...span, resource: r.resource.attributes }))),
    );
  });
}

/** Attributes as a plain object: strings, numbers (ints come as strings in OTLP/JSON) and booleans. */
export function attributeValues(list: readonly OtlpAttribute[]): Record<string, string | number | boolean | undefined> {
  return Object.fromEntries(
    list.map((a) => [
      a.key,
      a.value.stringValue ??
        a.value.boolValue ??
        a.value.doubleValue ??
        (a.value.intValue === undefined ? undefined : Number(a.value.intValue)),
    ]),
  );
}
