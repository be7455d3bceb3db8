/**
 * A request's W3C trace context continued through a real run: the http source's span for the request's batch is
 * the child of the client's span, in its trace, and the stage downstream follows it (spans received by a local
 * OTLP/HTTP collector).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Logger, OperatorDefinition } from '../../../engine/operator.ts';
import { runPipeline } from '../../../engine/runtime/run.ts';
import { createTelemetry } from '../../../engine/telemetry/telemetry.ts';
import { collected, collectSink } from '../../../test/support/operators.ts';
import { pipeline, stage } from '../../../test/support/spec.ts';
import { type FakeCollector, receivedSpans, startCollector } from '../../../test/telemetry/collector.ts';
import httpSource from './index.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';

let collector: FakeCollector | undefined;
const dir = mkdtempSync(join(tmpdir(), 'etl-http-trace-'));
afterEach(async () => {
  await collector?.close();
  collector = undefined;
  collected.clear();
  rmSync(dir, { recursive: true, force: true });
});

describe('http source tracing', () => {
  it("continues the client's traceparent into the pipeline's spans", async () => {
    collector = await startCollector();
    const telemetry = await createTelemetry({ traces: 'otlp', otlpEndpoint: collector.url }, { env: {} });
    let listening!: (url: string) => void;
    const address = new Promise<string>((resolve) => {
      listening = resolve;
    });
    const quiet = () => {};
    const logger = (): Logger => ({
      debug: quiet,
      info: (message) => {
        const url = /^listening on (\S+)/.exec(message)?.[1];
        if (url) listening(url);
      },
      warn: quiet,
      error: quiet,
    });
    const spec = pipeline('http-traced', join(dir, '.etl'), [
      stage({
        id: 'pushed',
        def: httpSource as OperatorDefinition,
        options: { ...defaults(), listen: '127.0.0.1:0' },
      }),
      stage({ id: 'out', def: collectSink as OperatorDefinition, inputs: ['pushed'], options: { name: 'traced' } }),
    ]);
    collected.set('traced', []);
    const stop = new AbortController();
    const done = runPipeline(spec, { telemetry, logger, stop: stop.signal });
    const url = await address;
    const traced = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'text/plain', traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` },
      body: 'a\nb',
    });
    expect(traced.status).toBe(200);
    const plain = await fetch(url, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'c' });
    expect(plain.status).toBe(200);
    stop.abort();
    expect((await done).ok).toBe(true);
    await telemetry.shutdown();

    const spans = receivedSpans(collector);
    const pushed = spans.filter((s) => s.name === 'pushed');
    expect(pushed).toHaveLength(2);
    const continued = pushed.find((s) => s.traceId === TRACE_ID);
    expect(continued?.parentSpanId).toBe(PARENT_ID);
    expect(spans.find((s) => s.name === 'out' && s.traceId === TRACE_ID)?.parentSpanId).toBe(continued?.spanId);
    const own = pushed.find((s) => s !== continued);
    expect(own?.traceId).not.toBe(TRACE_ID);
    expect(own?.parentSpanId ?? '').toBe('');
  });
});

/** The source's options with their defaults, as the loader hands them over. */
function defaults(): Record<string, unknown> {
  const properties = httpSource.schema.properties as Record<string, { default?: unknown }>;
  return Object.fromEntries(
    Object.entries(properties)
      .filter(([, p]) => p.default !== undefined)
      .map(([k, p]) => [k, p.default]),
  );
}
