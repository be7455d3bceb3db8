import { errorMessage } from '../../../engine/errors.ts';
import type { OperatorContext, PortRecords, StageReport, Transform } from '../../../engine/operator.ts';
import { deadLetter, type EtlRecord } from '../../../engine/record.ts';
import { OPEN_RECORD_SCHEMA } from '../../../engine/record-schema.ts';
import { type Action, type CompiledRule, compileRule } from './rules.ts';
import type { ValidateOptions } from './schema.ts';

/** What a failing record becomes when it fails several rules: the first of dead_letter, drop, flag. */
const RANK: Record<Action, number> = { flag: 1, drop: 2, dead_letter: 3 };

/** `validation_rules` of every valid record: frozen, so one array serves them all. */
const NO_RULES: readonly string[] = Object.freeze([]);

const share = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2, roundingMode: 'floor' });
const count = new Intl.NumberFormat('en-US');

interface Counter {
  inc(value?: number): void;
}

export class ValidateTransform implements Transform {
  private readonly id: string;
  private readonly rules: readonly CompiledRule[];
  private readonly flagging: boolean;
  private readonly minValidRatio: number | undefined;
  /** Figures of this run (a rerun after a crash counts again from zero, like the run summary). */
  private checked = 0;
  private valid = 0;
  private readonly failures: number[];
  private readonly outcomes: Record<'valid' | 'flagged' | 'dropped' | 'dead_lettered', Counter>;
  private readonly ruleCounters: Counter[];
  private readonly ratio: { set(value: number): void };

  constructor(options: ValidateOptions, ctx: OperatorContext) {
    this.id = ctx.id;
    const schema = ctx.inputSchema ?? OPEN_RECORD_SCHEMA;
    this.rules = options.rules.map((rule, i) => {
      const made = compileRule(rule, i, schema);
      // `etl validate` refused such options already; a rule that does not compile here is a programmer error.
      if ('problems' in made) throw new Error(`rule ${rule.name}: ${made.problems.map((p) => p.message).join('; ')}`);
      return made.rule;
    });
    this.flagging = this.rules.some((r) => r.action === 'flag');
    this.minValidRatio = options.min_valid_ratio;
    this.failures = this.rules.map(() => 0);
    const outcome = (name: string) =>
      ctx.metrics.counter('etl_validate_records_total', 'Records checked, by what became of them', { outcome: name });
    this.outcomes = {
      valid: outcome('valid'),
      flagged: outcome('flagged'),
      dropped: outcome('dropped'),
      dead_lettered: outcome('dead_lettered'),
    };
    this.ruleCounters = this.rules.map((r) =>
      ctx.metrics.counter('etl_validate_rule_failures_total', 'Records failing each rule', {
        rule: r.name,
        action: r.action,
      }),
    );
    this.ratio = ctx.metrics.gauge(
      'etl_validate_valid_ratio',
      'Share of the records checked in this run failing no rule',
    );
  }

  process(records: EtlRecord[]): PortRecords {
    const now = Date.now();
    const rules = this.rules;
    const out: EtlRecord[] = [];
    const dead: EtlRecord[] = [];
    const failures = rules.map(() => 0);
    let valid = 0;
    let flagged = 0;
    let dropped = 0;
    for (const record of records) {
      let failed: string[] | undefined;
      let reasons: string[] | undefined;
      let worst = 0;
      for (let i = 0; i < rules.length; i++) {
        const rule = rules[i] as CompiledRule;
        let why: string | undefined;
        try {
          why = rule.check(record, now);
        } catch (error) {
          why = `could not be checked: ${errorMessage(error)}`;
        }
        if (why === undefined) continue;
        (failures[i] as number)++;
        if (failed === undefined || reasons === undefined) {
          failed = [];
          reasons = [];
        }
        failed.push(rule.name);
        reasons.push(`rule ${rule.name}: ${why}`);
        worst = Math.max(worst, RANK[rule.action]);
      }
      if (failed === undefined) {
        valid++;
        // In place (`changesRecords` with flag rules): the runtime gives this stage records nobody else holds.
        if (this.flagging) {
          record.validation_failed = false;
          record.validation_rules = NO_RULES;
        }
        out.push(record);
      } else if (worst === RANK.dead_letter) {
        dead.push(deadLetter(record, this.id, (reasons as string[]).join('; ')));
      } else if (worst === RANK.drop) {
        dropped++;
      } else {
        flagged++;
        record.validation_failed = true;
        record.validation_rules = failed;
        out.push(record);
      }
    }
    // Counted once the batch is done: nothing above throws, so a batch is never counted twice.
    this.checked += records.length;
    this.valid += valid;
    for (let i = 0; i < failures.length; i++) {
      const n = failures[i] as number;
      if (n === 0) continue;
      (this.failures[i] as number) += n;
      (this.ruleCounters[i] as Counter).inc(n);
    }
    if (valid > 0) this.outcomes.valid.inc(valid);
    if (flagged > 0) this.outcomes.flagged.inc(flagged);
    if (dropped > 0) this.outcomes.dropped.inc(dropped);
    if (dead.length > 0) this.outcomes.dead_lettered.inc(dead.length);
    if (this.checked > 0) this.ratio.set(this.valid / this.checked);
    return dead.length > 0 ? { default: out, dead_letter: dead } : { default: out };
  }

  summarize(): StageReport {
    const min = this.minValidRatio;
    if (this.checked === 0) return { lines: ['no record checked'] };
    const ratio = this.valid / this.checked;
    const minimum = min === undefined ? '' : `; min_valid_ratio ${min} (${share.format(min * 100)}%)`;
    const lines = [
      `${share.format(ratio * 100)}% valid (${count.format(this.valid)} of ${count.format(this.checked)} records)${minimum}`,
    ];
    this.rules.forEach((rule, i) => {
      const n = this.failures[i] as number;
      if (n > 0)
        lines.push(
          `rule ${rule.name} (${rule.action}): ${count.format(n)} failed (${share.format((n / this.checked) * 100)}%)`,
        );
    });
    if (min === undefined || ratio >= min) return { lines };
    const worst = this.rules
      .map((rule, i) => ({ name: rule.name, n: this.failures[i] as number }))
      .filter((r) => r.n > 0)
      .sort((a, b) => b.n - a.n)
      .slice(0, 3)
      .map((r) => `${r.name} ${count.format(r.n)}`);
    return {
      lines,
      failure:
        `${share.format(ratio * 100)}% of the records are valid, below min_valid_ratio ${min}` +
        ` (rules failed most: ${worst.join(', ')})`,
    };
  }
}
