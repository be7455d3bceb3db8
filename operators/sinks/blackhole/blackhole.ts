/** Counts and drops. The runtime already counts received records; this adds the optional rate log. */
import type { OperatorContext, Sink } from '../../../engine/operator.ts';
import type { EtlRecord } from '../../../engine/record.ts';
import type { BlackholeSinkOptions } from './schema.ts';

export interface BlackholeSink extends Sink {
  readonly count: number;
}

export function createBlackholeSink(options: BlackholeSinkOptions, ctx: OperatorContext): BlackholeSink {
  let count = 0;
  let lastCount = 0;
  let lastAt = Date.now();
  let timer: NodeJS.Timeout | undefined;
  if (options.print_interval_seconds) {
    timer = setInterval(() => {
      const now = Date.now();
      const rate = ((count - lastCount) * 1000) / Math.max(1, now - lastAt);
      ctx.logger.info(`blackhole: ${count} records, ${Math.round(rate)} records/s`);
      lastCount = count;
      lastAt = now;
    }, options.print_interval_seconds * 1000);
    timer.unref();
  }
  return {
    get count() {
      return count;
    },
    write(records: EtlRecord[]) {
      count += records.length;
    },
    async close() {
      if (timer) clearInterval(timer);
      timer = undefined;
    },
  };
}
