/**
 * Drives the aggregate through its contract as the runtime does: the watermark observes each batch before
 * `process`, keyed state is a map that snapshots copy as JSON, and the last record emitted per window and group
 * is what a rollup table with `on_conflict: update` would hold.
 */
import type { KeyedState } from '../../../engine/operator.ts';
import type { EtlRecord } from '../../../engine/record.ts';
import { Watermark } from '../../../engine/runtime/watermark.ts';
import { createAjv } from '../../../engine/schema/ajv.ts';
import { type RecordingContext, recordingContext } from '../../../test/support/context.ts';
import { AggregateTransform } from './aggregate.ts';
import definition from './index.ts';
import type { AggregateOptions } from './schema.ts';

const validate = createAjv().compile(definition.schema);

/** Options as the loader hands them over: validated, defaults applied. */
export function options(raw: Record<string, unknown>): AggregateOptions {
  const copy = structuredClone(raw);
  if (!validate(copy)) throw new Error(JSON.stringify(validate.errors));
  return copy as unknown as AggregateOptions;
}

/** What a checkpoint holds of the stage: the keyed map as JSON, and the inline state. */
export interface Saved {
  readonly keyed: Array<[string, unknown]>;
  readonly inline: unknown;
}

export class Harness {
  readonly ctx: RecordingContext;
  readonly transform: AggregateTransform;
  /** The last row per `window_start|group`, as an upserting table holds them. */
  readonly table = new Map<string, EtlRecord>();
  readonly emitted: EtlRecord[] = [];
  readonly deadLetters: EtlRecord[] = [];
  private readonly watermark: Watermark;
  private readonly keyed = new Map<string, unknown>();
  private readonly keyOf: (r: EtlRecord) => string;

  constructor(
    raw: Record<string, unknown>,
    latenessMs: number,
    saved?: Saved,
    keyOf: (r: EtlRecord) => string = (r) => `${r.window_start}|${r.path ?? ''}`,
  ) {
    this.keyOf = keyOf;
    this.watermark = new Watermark({ field: 'timestamp', latenessMs, idleMs: Number.MAX_SAFE_INTEGER });
    const restored = saved === undefined ? undefined : (JSON.parse(JSON.stringify(saved)) as Saved);
    for (const [k, v] of restored?.keyed ?? []) this.keyed.set(k, v);
    this.ctx = recordingContext({
      watermark: () => this.watermark.value(),
      keyed: <V>() => this.keyed as unknown as KeyedState<V>,
    });
    this.transform = new AggregateTransform(options(raw), this.ctx);
    this.transform.restore(restored?.inline);
  }

  process(batch: EtlRecord[]): void {
    this.watermark.observe(batch);
    this.take(this.transform.process(batch));
  }

  flush(): void {
    this.take(this.transform.flush());
  }

  tick(): void {
    this.take(this.transform.tick());
  }

  /**
   * A checkpoint: the inline state, and the keyed map's values as set at the cut. Like the runtime's keyed log,
   * it turns them into JSON only later (when a rerun reads them), after the transform went on processing.
   */
  save(): Saved {
    const inline = this.transform.snapshot();
    return { keyed: [...this.keyed], inline };
  }

  private take(ports: Record<string, EtlRecord[]>): void {
    for (const r of ports.default ?? []) {
      this.emitted.push(r);
      this.table.set(this.keyOf(r), r);
    }
    this.deadLetters.push(...(ports.dead_letter ?? []));
  }
}
