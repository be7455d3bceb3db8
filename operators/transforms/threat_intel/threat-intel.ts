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
import { AbuseIpdb, isPublic } from './abuseipdb.ts';
import { addressBytes, WatchedList } from './lists.ts';
import type { ThreatIntelOptions } from './schema.ts';
import { BUNDLED_RULES, combineRules, readRules, Signatures, type Target } from './signatures.ts';

export const THREATS_PORT = 'threats';

/** What the lookups found for one record, before it becomes fields. */
interface Found {
  lists: string[] | undefined;
  range: string | null;
  note: string | null;
}

export class ThreatIntelTransform implements Transform {
  private readonly options: ThreatIntelOptions;
  private readonly ctx: OperatorContext;
  private lists: WatchedList[] = [];
  private signatures: Signatures | undefined;
  /** Record field read for each request part the signatures read. */
  private readonly parts: [Target, string][] = [];
  private readonly withLists: boolean;
  private readonly withSignatures: boolean;
  private readonly matches: Record<'list' | 'signature' | 'score' | 'any', { inc(value?: number): void }>;
  private abuse: AbuseIpdb | undefined;

  constructor(options: ThreatIntelOptions, ctx: OperatorContext) {
    this.options = options;
    this.ctx = ctx;
    this.withLists = options.lists.length > 0;
    this.withSignatures = signaturesOn(options);
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
        if (field !== null && this.signatures.reads(target)) this.parts.push([target, field]);
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
    let byList = 0;
    let bySignature = 0;
    for (let i = 0; i < records.length; i++) {
      const record = records[i] as EtlRecord;
      // Fields set one by one, in one order, on a copy: every record gets the same shape, which is what keeps
      // V8's property access fast downstream (spreading a second object per record cost a third of the time).
      const enriched: EtlRecord = { ...record };
      enriched.threat_matched = false;
      let matched = false;
      if (this.withLists) {
        const found = this.lookUp(record[this.options.ip_field]);
        enriched.threat_lists = found.lists ? found.lists.join(',') : null;
        enriched.threat_range = found.range;
        enriched.threat_range_note = found.note;
        if (found.lists) {
          matched = true;
          byList++;
        }
      }
      if (this.signatures) {
        const parts: Partial<Record<Target, string>> = {};
        for (const [target, field] of this.parts) {
          const value = record[field];
          if (typeof value === 'string') parts[target] = value;
        }
        const match = this.signatures.match(parts);
        enriched.threat_rules = match ? match.rules.join(',') : null;
        enriched.threat_categories = match ? match.categories.join(',') : null;
        if (match) {
          matched = true;
          bySignature++;
        }
      } else if (this.withSignatures) {
        enriched.threat_rules = null;
        enriched.threat_categories = null;
      }
      enriched.threat_matched = matched;
      out[i] = enriched;
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

  /** The lists holding the address, and the most specific block among them (the first list's on a tie). */
  private lookUp(value: unknown): Found {
    const none: Found = { lists: undefined, range: null, note: null };
    if (typeof value !== 'string') return none;
    const address = addressBytes(value);
    if (address === undefined) return none;
    let best = -1;
    const found = none;
    for (const list of this.lists) {
      const hit = list.lookup(address);
      if (hit === undefined) continue;
      found.lists ??= [];
      found.lists.push(list.name);
      if (hit.length > best) {
        best = hit.length;
        found.range = hit.entry.range;
        found.note = hit.entry.note;
      }
    }
    return found;
  }

  async close(): Promise<void> {
    for (const list of this.lists) list.close();
    this.abuse?.close();
  }
}

export function signaturesOn(options: ThreatIntelOptions): boolean {
  return options.signatures.builtin || options.signatures.files.length > 0;
}
