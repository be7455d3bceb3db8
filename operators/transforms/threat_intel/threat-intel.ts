/**
 * The threat_intel transform: looks each record's client address up in the lists (longest-prefix match per
 * list) and its request parts up in the signatures, and adds the `threat_*` fields. Records that match leave on
 * the default port like every other, and again on `threats`.
 */
import { resolve } from 'node:path';
import type { Redis } from 'ioredis';
import { EtlError } from '../../../engine/errors.ts';
import type { OperatorContext, PortRecords, Transform } from '../../../engine/operator.ts';
import type { EtlRecord } from '../../../engine/record.ts';
import { recordUpdater } from '../../shared/enrich.ts';
import { cacheKey } from '../../shared/cache-key.ts';
import { type FieldReader, fieldGetter } from '../../shared/fields.ts';
import { AbuseIpdb, isPublic } from './abuseipdb.ts';
import { addressBytes, WatchedList } from './lists.ts';
import type { ThreatIntelOptions } from './schema.ts';
import { BUNDLED_RULES, combineRules, readRules, Signatures, type Target } from './signatures.ts';

export const THREATS_PORT = 'threats';

/** IPv6 answers of `addressBytes` kept (see `addressOf`). */
const V6_KEPT = 10_000;

export class ThreatIntelTransform implements Transform {
  private readonly options: ThreatIntelOptions;
  private readonly ctx: OperatorContext;
  private lists: WatchedList[] = [];
  private signatures: Signatures | undefined;
  /** Each request part the signatures read, and the reader of its record field. */
  private readonly partTargets: Target[] = [];
  private readonly partReads: FieldReader[] = [];
  private readonly readIp: FieldReader;
  private readonly withLists: boolean;
  private readonly withSignatures: boolean;
  private readonly matches: Record<'list' | 'signature' | 'score' | 'any', { inc(value?: number): void }>;
  private abuse: AbuseIpdb | undefined;
  /** Sets `values` on each record in place (threat_matched, then the list and signature fields). */
  private readonly build: (record: EtlRecord, values: readonly unknown[]) => EtlRecord;
  /** The added values of the record being made (one array for all: `build` copies them). */
  private readonly values: unknown[];
  /** The request parts of the record being matched (one object for all). */
  private readonly parts: Partial<Record<Target, string>> = {};
  private readonly v6 = new Map<string, readonly number[] | null>();

  constructor(options: ThreatIntelOptions, ctx: OperatorContext) {
    this.options = options;
    this.ctx = ctx;
    this.withLists = options.lists.length > 0;
    this.withSignatures = signaturesOn(options);
    this.readIp = fieldGetter(options.ip_field);
    // The fields in the order they were always set (threat_fields' order): threat_matched, lists, signatures.
    const keys = ['threat_matched'];
    if (this.withLists) keys.push('threat_lists', 'threat_range', 'threat_range_note');
    if (this.withSignatures) keys.push('threat_rules', 'threat_categories');
    this.build = recordUpdater(keys);
    this.values = keys.map(() => null);
    const help = 'Records that matched, by what they matched';
    this.matches = {
      list: ctx.metrics.counter('threat_intel_matches_total', help, { by: 'list' }),
      signature: ctx.metrics.counter('threat_intel_matches_total', help, { by: 'signature' }),
      score: ctx.metrics.counter('threat_intel_matches_total', help, { by: 'abuseipdb' }),
      any: ctx.metrics.counter('threat_intel_matches_total', help, { by: 'any' }),
    };
  }

  async open(): Promise<void> {
    const { options, ctx } = this;
    if (this.withSignatures) {
      const { builtin, files, disable } = options.signatures;
      try {
        const sets = await Promise.all([
          ...(builtin ? [readRules(BUNDLED_RULES)] : []),
          ...files.map((file) => readRules(resolve(ctx.baseDir, file))),
        ]);
        this.signatures = new Signatures(combineRules(sets, disable));
      } catch (error) {
        throw new EtlError('ETL_CFG_INVALID', `threat_intel ${ctx.id}: signatures: ${(error as Error).message}`, {
          cause: error,
        });
      }
      const fields: [Target, string | null][] = [
        ['path', options.path_field],
        ['query', options.query_field],
        ['user_agent', options.user_agent_field],
        ['referrer', options.referrer_field],
      ];
      for (const [target, field] of fields) {
        if (field !== null && this.signatures.reads(target)) {
          this.partTargets.push(target);
          this.partReads.push(fieldGetter(field));
        }
      }
      ctx.logger.info(`threat_intel ${ctx.id}: ${this.signatures.size} signatures`);
    }
    if (options.abuseipdb) {
      const redis = ctx.resource<Redis>(options.abuseipdb.cache);
      this.abuse = new AbuseIpdb(options.abuseipdb, redis, ctx.logger, ctx.metrics, `threat_intel ${ctx.id}`);
    }
    const reload = { watch: options.reload.watch, intervalSeconds: options.reload.interval_seconds };
    this.lists = options.lists.map(
      (list) => new WatchedList({ name: list.name, path: resolve(ctx.baseDir, list.path) }, reload),
    );
    for (const list of this.lists) this.follow(list);
    try {
      await Promise.all(
        this.lists.map((list) =>
          list.open().catch((error: NodeJS.ErrnoException) => {
            const why = error.code === 'ENOENT' ? 'no such file' : error.message;
            throw new EtlError(
              'ETL_CFG_INVALID',
              `threat_intel ${ctx.id}: list ${list.name}: cannot read ${list.options.path}: ${why}`,
              { cause: error },
            );
          }),
        ),
      );
    } catch (error) {
      for (const list of this.lists) list.close();
      throw error;
    }
  }

  /** Logs and counts each load of a list; a reload that fails keeps the list as it was. */
  private follow(list: WatchedList): void {
    const { ctx } = this;
    const ranges = ctx.metrics.gauge('threat_intel_list_ranges', 'Blocks in each list', { list: list.name });
    const loads = ctx.metrics.counter('threat_intel_list_loads_total', 'List (re)loads', { list: list.name });
    const failures = ctx.metrics.counter('threat_intel_list_failures_total', 'Reloads that failed', {
      list: list.name,
    });
    list.on('loaded', (event) => {
      ranges.set(event.ranges);
      loads.inc();
      const refused = event.refused.length;
      const first = event.refused[0];
      ctx.logger.info(
        `threat_intel ${ctx.id}: list ${event.list} ${event.reload ? 'reloaded' : 'loaded'}: ${event.ranges} blocks from ${event.path}` +
          (refused > 0 && first ? `; ${refused} lines refused, the first at line ${first.line}: ${first.text}` : ''),
        { list: event.list, ranges: event.ranges, refused },
      );
      if (refused > 0) {
        ctx.logger.warn(
          `threat_intel ${ctx.id}: list ${event.list}: ${refused} lines are no address or CIDR block (${event.refused
            .slice(0, 5)
            .map((r) => `${event.path}:${r.line}: ${r.text}`)
            .join('; ')})`,
        );
      }
    });
    list.on('failed', (event) => {
      failures.inc();
      ctx.logger.warn(
        `threat_intel ${ctx.id}: list ${event.list}: cannot read ${event.path} again, keeping the list as it was: ${event.error.message}`,
      );
    });
  }

  process(records: EtlRecord[]): PortRecords | Promise<PortRecords> {
    const out: EtlRecord[] = new Array(records.length);
    const { build, values, parts, signatures, withLists, withSignatures, partTargets, partReads, readIp } = this;
    // Where the signature fields go among `values` (after the list fields when there are lists).
    const ruleSlot = withLists ? 4 : 1;
    let byList = 0;
    let bySignature = 0;
    for (let i = 0; i < records.length; i++) {
      const record = records[i] as EtlRecord;
      let matched = false;
      if (withLists && this.lookUp(readIp(record), values)) {
        matched = true;
        byList++;
      }
      if (signatures) {
        for (let p = 0; p < partTargets.length; p++) {
          const value = (partReads[p] as FieldReader)(record);
          parts[partTargets[p] as Target] = typeof value === 'string' ? value : undefined;
        }
        const match = signatures.match(parts);
        values[ruleSlot] = match ? match.rules.join(',') : null;
        values[ruleSlot + 1] = match ? match.categories.join(',') : null;
        if (match) {
          matched = true;
          bySignature++;
        }
      } else if (withSignatures) {
        values[ruleSlot] = null;
        values[ruleSlot + 1] = null;
      }
      values[0] = matched;
      out[i] = build(record, values);
    }
    if (byList > 0) this.matches.list.inc(byList);
    if (bySignature > 0) this.matches.signature.inc(bySignature);
    return this.abuse ? this.withScores(this.abuse, out) : this.ports(out);
  }

  /** Adds the AbuseIPDB fields to the records (built by this batch, not emitted yet). */
  private async withScores(abuse: AbuseIpdb, out: EtlRecord[]): Promise<PortRecords> {
    const field = this.options.ip_field;
    const distinct = new Set<string>();
    for (const record of out) {
      const value = record[field];
      if (typeof value === 'string') distinct.add(value);
    }
    const answers = await abuse.lookUp([...distinct].filter(isPublic));
    const minScore = this.options.abuseipdb?.min_score ?? 100;
    let byScore = 0;
    for (const record of out) {
      const value = record[field];
      const answer = typeof value === 'string' ? answers.get(value) : undefined;
      record.threat_score = answer ? answer.score : null;
      record.threat_reports = answer ? answer.reports : null;
      if (answer && answer.score >= minScore) {
        record.threat_matched = true;
        byScore++;
      }
    }
    if (byScore > 0) this.matches.score.inc(byScore);
    return this.ports(out);
  }

  private ports(out: EtlRecord[]): PortRecords {
    const threats = out.filter((record) => record.threat_matched === true);
    if (threats.length === 0) return { default: out };
    this.matches.any.inc(threats.length);
    return { default: out, [THREATS_PORT]: threats };
  }

  /**
   * Sets `values[1..3]` to the lists holding the address (comma-separated), the most specific block among them
   * (the first list's on a tie) and its note, or nulls; true when some list holds it.
   */
  private lookUp(value: unknown, values: unknown[]): boolean {
    values[1] = null;
    values[2] = null;
    values[3] = null;
    if (typeof value !== 'string') return false;
    const address = this.addressOf(value);
    if (address === undefined) return false;
    let best = -1;
    let names: string | null = null;
    for (const list of this.lists) {
      const hit = list.lookup(address);
      if (hit === undefined) continue;
      names = names === null ? list.name : `${names},${list.name}`;
      if (hit.length > best) {
        best = hit.length;
        values[2] = hit.entry.range;
        values[3] = hit.entry.note;
      }
    }
    values[1] = names;
    return names !== null;
  }

  /**
   * `addressBytes`, with the answers for IPv6 kept: ipaddr.js takes microseconds to read one, and clients repeat.
   * Emptied when full (addresses are short: a few MiB at most).
   */
  private addressOf(text: string): readonly number[] | undefined {
    if (!text.includes(':')) return addressBytes(text);
    const known = this.v6.get(text);
    if (known !== undefined) return known ?? undefined;
    const bytes = addressBytes(text);
    if (this.v6.size >= V6_KEPT) this.v6.clear();
    this.v6.set(cacheKey(text), bytes ?? null);
    return bytes;
  }

  async close(): Promise<void> {
    for (const list of this.lists) list.close();
    this.abuse?.close();
  }
}

export function signaturesOn(options: ThreatIntelOptions): boolean {
  return options.signatures.builtin || options.signatures.files.length > 0;
}
