/**
 * `etl tap <stage>[.port]`: prints live samples of the records on a port of a running pipeline, one JSON object per
 * line (`{pipeline, stage, port, record, origin}`), from its metrics server's `/tap` (engine/telemetry/tap.ts).
 */
import { baseUrl } from '../metrics-url.ts';

export interface TapOptions {
  readonly url: string;
  readonly pipeline?: string;
  readonly rate: number;
  /** Stop after this many records. */
  readonly limit?: number;
  readonly out: NodeJS.WritableStream;
  readonly err: NodeJS.WritableStream;
  readonly signal?: AbortSignal;
}

export async function runTap(target: string, options: TapOptions): Promise<number> {
  const dot = target.indexOf('.');
  const stage = dot < 0 ? target : target.slice(0, dot);
  const port = dot < 0 ? 'default' : target.slice(dot + 1);
  const query = new URLSearchParams({ stage, port, rate: String(options.rate) });
  if (options.pipeline) query.set('pipeline', options.pipeline);
  const url = `${baseUrl(options.url)}/tap?${query}`;
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  let response: Response;
  try {
    response = await fetch(url, { signal });
  } catch (error) {
    if (signal.aborted) return 0;
    options.err.write(
      `etl tap: nothing answers at ${options.url} (${(error as Error).cause ?? (error as Error).message}): a pipeline ` +
        'serves taps on its metrics port (telemetry.metrics.prometheus_port); give it with --url\n',
    );
    return 1;
  }
  if (!response.ok || !response.body) {
    options.err.write(`etl tap: ${(await response.text()).trim() || `HTTP ${response.status}`}\n`);
    return 1;
  }
  let count = 0;
  let rest = '';
  const decoder = new TextDecoder();
  try {
    for await (const chunk of response.body) {
      rest += decoder.decode(chunk, { stream: true });
      let newline = rest.indexOf('\n');
      while (newline >= 0) {
        options.out.write(`${rest.slice(0, newline)}\n`);
        rest = rest.slice(newline + 1);
        count++;
        if (options.limit !== undefined && count >= options.limit) {
          stop.abort();
          return 0;
        }
        newline = rest.indexOf('\n');
      }
    }
  } catch (error) {
    if (signal.aborted) return 0;
    options.err.write(`etl tap: the pipeline went away (${(error as Error).message})\n`);
    return 1;
  }
  // The server closed the stream: the run ended.
  options.err.write('etl tap: the pipeline ended\n');
  return 0;
}
