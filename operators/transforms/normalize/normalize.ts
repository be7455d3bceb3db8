import type { OperatorContext, PortRecords, Transform } from '../../../engine/operator.ts';
import { deadLetter, type EtlRecord } from '../../../engine/record.ts';
import { OPEN_RECORD_SCHEMA } from '../../../engine/record-schema.ts';
import type { NormalizeOptions } from './schema.ts';
import { type CompiledStep, excluding, remover, walkSteps } from './steps.ts';

interface Counter {
  inc(value?: number): void;
}

export class NormalizeTransform implements Transform {
  private readonly id: string;
  private readonly steps: readonly CompiledStep[];
  /** Copies a record without the fields steps removed. */
  private readonly withoutRemoved: (work: Record<string, unknown>) => Record<string, unknown>;
  private readonly deadLettered: Counter;
  /** Per step with `when`: records whose condition could not be evaluated (the step was skipped for them). */
  private readonly whenErrors: (Counter | undefined)[];

  /** Copies a record as it reaches the stage, without the fields removed early (`Walk.early`). */
  private readonly copy: ((record: EtlRecord) => Record<string, unknown>) | undefined;

  /** `earlyRemoval: false` only for tests comparing both ways. */
  constructor(options: NormalizeOptions, ctx: OperatorContext, earlyRemoval = true) {
    this.id = ctx.id;
    const walk = walkSteps(options.steps, ctx.inputSchema ?? OPEN_RECORD_SCHEMA, earlyRemoval);
    // `etl validate` refused such options already; steps that do not compile here are a programmer error.
    if (walk.problems.length > 0) throw new Error(walk.problems.map((p) => p.message).join('; '));
    this.steps = walk.steps;
    this.withoutRemoved = remover(walk.removable);
    this.copy = walk.early.length > 0 ? excluding(walk.early) : undefined;
    this.deadLettered = ctx.metrics.counter(
      'etl_normalize_dead_letters_total',
      'Records dead-lettered because a step could not make their value',
    );
    this.whenErrors = options.steps.map((step, i) =>
      step.when === undefined
        ? undefined
        : ctx.metrics.counter(
            'etl_normalize_when_errors_total',
            'Records for which a step was skipped because its `when` could not be evaluated',
            { step: String(i) },
          ),
    );
  }

  process(records: EtlRecord[]): PortRecords {
    const steps = this.steps;
    const out: EtlRecord[] = [];
    const dead: EtlRecord[] = [];
    let whenErrors: number[] | undefined;
    for (let r = 0; r < records.length; r++) {
      const record = records[r] as EtlRecord;
      // One copy per record, which the steps change in place: the record given is never changed.
      const work = this.copy === undefined ? { ...record } : this.copy(record);
      let why: string | undefined;
      let removed = false;
      for (let i = 0; i < steps.length; i++) {
        const step = steps[i] as CompiledStep;
        if (step.when !== undefined) {
          const test = step.when.evaluate(work as EtlRecord);
          if (!test.ok) {
            whenErrors ??= steps.map(() => 0);
            (whenErrors[i] as number)++;
            continue;
          }
          if (!test.value) continue;
        }
        why = step.operation.apply(work, record);
        if (step.operation.removes) removed = true;
        if (why !== undefined) {
          why = `steps[${i}] ${step.operation.label}: ${why}`;
          break;
        }
      }
      if (why === undefined) out.push(removed ? (this.withoutRemoved(work) as EtlRecord) : (work as EtlRecord));
      else dead.push(deadLetter(record, this.id, why));
    }
    // Counted once the batch is done: nothing above throws, so a batch is never counted twice.
    if (whenErrors !== undefined) {
      for (let i = 0; i < whenErrors.length; i++) if (whenErrors[i]) this.whenErrors[i]?.inc(whenErrors[i]);
    }
    if (dead.length === 0) return { default: out };
    this.deadLettered.inc(dead.length);
    return { default: out, dead_letter: dead };
  }
}
