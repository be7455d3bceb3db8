/**
 * `etl tap`: live samples of the records on a stage's port of a running pipeline, like `vector tap`, for looking
 * at what a stage does without redeploying it. The runtime offers each batch it routes to the hub; with nobody
 * tapping, that is one boolean test per batch. A tap is served as NDJSON on the metrics server (`GET /tap`), so it
 * is reachable exactly where /metrics is (this machine only, by default): records may hold personal data.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type EtlRecord, ORIGIN } from '../record.ts';

interface Tap {
  readonly pipeline: string | undefined;
  readonly stage: string;
  readonly port: string;
  /** Records per second at most (a token bucket with a burst of one second's worth). */
  readonly rate: number;
  tokens: number;
  refilledAt: number;
  send(line: string): void;
}

class TapHub {
  /** True while someone taps: the runtime's only cost otherwise. */
  active = false;
  private readonly taps = new Set<Tap>();
  /** The ports of each running pipeline's stages, for the answer to a tap of a stage that is not there. */
  private readonly ports = new Map<string, Map<string, readonly string[]>>();

  /** A run starting: its stages and their ports. Returns the unregistration. */
  register(pipeline: string, stages: ReadonlyMap<string, readonly string[]>): () => void {
    const mine = new Map(stages);
    this.ports.set(pipeline, mine);
    return () => {
      // A reload starts the new run before the old one has quite ended: only the old one's entry goes.
      if (this.ports.get(pipeline) === mine) this.ports.delete(pipeline);
    };
  }

  offer(pipeline: string, stage: string, port: string, records: readonly EtlRecord[]): void {
    const now = performance.now();
    for (const tap of this.taps) {
      if (tap.stage !== stage || tap.port !== port || (tap.pipeline !== undefined && tap.pipeline !== pipeline))
        continue;
      tap.tokens = Math.min(tap.rate, tap.tokens + ((now - tap.refilledAt) / 1000) * tap.rate);
      tap.refilledAt = now;
      const take = Math.min(Math.floor(tap.tokens), records.length);
      tap.tokens -= take;
      for (let i = 0; i < take; i++) {
        const record = records[i] as EtlRecord;
        const origin = record[ORIGIN];
        tap.send(`${JSON.stringify({ pipeline, stage, port, record, ...(origin ? { origin } : {}) })}\n`);
      }
    }
  }

  /** What can be tapped: `pipeline`, `stage`, `ports` per stage, for the answer to a wrong request. */
  known(): Array<{ pipeline: string; stage: string; ports: readonly string[] }> {
    const out: Array<{ pipeline: string; stage: string; ports: readonly string[] }> = [];
    for (const [pipeline, stages] of this.ports)
      for (const [stage, ports] of stages) out.push({ pipeline, stage, ports });
    return out;
  }

  add(tap: Tap): () => void {
    this.taps.add(tap);
    this.active = true;
    return () => {
      this.taps.delete(tap);
      this.active = this.taps.size > 0;
    };
  }
}

/** The process's taps: every run offers its batches here, the metrics server serves them. */
export const taps = new TapHub();

/**
 * `GET /tap?stage=parsed[&port=default][&pipeline=web][&rate=10]`: NDJSON, one line per sampled record
 * (`{pipeline, stage, port, record, origin}`), for as long as the client stays.
 */
export function serveTap(request: IncomingMessage, response: ServerResponse): void {
  const query = new URL(request.url ?? '/', 'http://localhost').searchParams;
  const stage = query.get('stage') ?? '';
  const port = query.get('port') || 'default';
  const pipeline = query.get('pipeline') || undefined;
  const rate = Number(query.get('rate') ?? 10);
  const matches = taps
    .known()
    .filter((k) => k.stage === stage && (pipeline === undefined || k.pipeline === pipeline) && k.ports.includes(port));
  if (!(rate > 0) || matches.length === 0) {
    const known = taps
      .known()
      .map((k) => `${k.pipeline}/${k.stage} (${k.ports.join(', ')})`)
      .join('; ');
    const why = !(rate > 0)
      ? `rate must be a number above 0, not ${query.get('rate')}`
      : `no stage ${stage} with port ${port} runs here`;
    response.writeHead(404, { 'content-type': 'text/plain' }).end(`${why}; stages: ${known || 'none'}\n`);
    return;
  }
  response.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
  response.flushHeaders();
  const remove = taps.add({
    pipeline,
    stage,
    port,
    rate,
    tokens: rate,
    refilledAt: performance.now(),
    send: (line) => response.write(line),
  });
  response.on('close', remove);
}
