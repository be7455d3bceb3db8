/**
 * Request signatures: rules read from YAML files (the bundled signatures.yaml, then the user's), compiled once
 * into a matcher per part of the request. Most requests match nothing, so each part is first tested against
 * one regular expression made of all its rules' patterns; only a request that matches it is tested rule by
 * rule, to name every rule it matches. Verdicts on recent texts are kept, as logs repeat their agents and paths.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { isMap, isSeq, LineCounter, parseDocument } from 'yaml';
import { cacheKey } from '../../shared/cache-key.ts';

export const TARGETS = ['path', 'query', 'user_agent', 'referrer'] as const;
export type Target = (typeof TARGETS)[number];

export interface Rule {
  readonly id: string;
  readonly category: string;
  readonly in: readonly Target[];
  readonly pattern: string;
  readonly caseSensitive: boolean;
  readonly description: string;
  /** `file:line` of the rule, for messages. */
  readonly where: string;
}

export const BUNDLED_RULES = fileURLToPath(new URL('./signatures.yaml', import.meta.url));

/** Only this much of each part is read: a rule's cost stays bounded however long a request line is. */
export const MAX_CHARS = 8192;

/** Reads a rule file, refusing it whole (with file:line) when a rule is malformed. */
export async function readRules(path: string): Promise<Rule[]> {
  return parseRules(await readFile(path, 'utf8'), path);
}

export function parseRules(text: string, file: string): Rule[] {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const at = (offset: number | undefined) => {
    if (offset === undefined) return file;
    const { line, col } = lineCounter.linePos(offset);
    return `${file}:${line}:${col}`;
  };
  if (doc.errors.length > 0) {
    const error = doc.errors[0] as (typeof doc.errors)[0];
    throw new Error(`${at(error.pos[0])}: ${error.message.split('\n')[0]}`);
  }
  const rules = isMap(doc.contents) ? doc.contents.get('rules', true) : undefined;
  if (!isSeq(rules)) throw new Error(`${file}: a rule file is a map with a \`rules:\` list`);
  const seen = new Set<string>();
  return rules.items.map((node, i) => {
    const where = at((node as { range?: [number] }).range?.[0]);
    const fail = (message: string): never => {
      throw new Error(`${where}: rule ${i + 1}: ${message}`);
    };
    if (!isMap(node)) return fail('a rule is a map (id, category, in, pattern, description)');
    const value = node.toJSON() as Record<string, unknown>;
    for (const key of Object.keys(value)) {
      if (!['id', 'category', 'in', 'pattern', 'description', 'case_sensitive'].includes(key)) {
        fail(`unknown key \`${key}\` (id, category, in, pattern, description, case_sensitive)`);
      }
    }
    const { id, category, pattern, description } = value;
    if (typeof id !== 'string' || !/^[a-z0-9][a-z0-9_.-]*$/.test(id)) {
      fail('`id` must be lowercase letters, digits, `-`, `_` or `.`');
    }
    if (seen.has(id as string)) fail(`\`${id}\` is given twice in this file`);
    seen.add(id as string);
    if (typeof category !== 'string' || !/^[a-z0-9_]+$/.test(category)) fail('`category` must be a lowercase word');
    const targets = value.in;
    if (!Array.isArray(targets) || targets.length === 0 || !targets.every((t) => TARGETS.includes(t as Target))) {
      fail(`\`in\` must list some of ${TARGETS.join(', ')}`);
    }
    if (typeof pattern !== 'string' || pattern === '') fail('`pattern` must be a regular expression');
    const caseSensitive = value.case_sensitive === true;
    try {
      new RegExp(pattern as string, caseSensitive ? '' : 'i');
    } catch (error) {
      fail(`\`pattern\` is not a valid regular expression: ${(error as Error).message}`);
    }
    return {
      id: id as string,
      category: category as string,
      in: [...new Set(targets as Target[])],
      pattern: pattern as string,
      caseSensitive,
      description: typeof description === 'string' ? description : '',
      where,
    };
  });
}

/**
 * The rules in force: the bundled ones (unless `builtin` is false), then each file's, a rule replacing an earlier
 * one of the same id; then `disable` removes rules by id (an id no rule has is an error: a typo would
 * otherwise leave the rule on).
 */
export function combineRules(sets: readonly (readonly Rule[])[], disable: readonly string[]): Rule[] {
  const byId = new Map<string, Rule>();
  for (const set of sets) for (const rule of set) byId.set(rule.id, rule);
  for (const id of disable) {
    if (!byId.delete(id)) throw new Error(`signatures.disable names \`${id}\`, which no rule has`);
  }
  return [...byId.values()];
}

interface Compiled {
  readonly rule: Rule;
  readonly regex: RegExp;
}

interface TargetMatcher {
  readonly target: Target;
  /** All the patterns that can be joined, as one alternation; undefined when there are none. */
  readonly any: RegExp | undefined;
  readonly joined: readonly Compiled[];
  /** Patterns that must run alone: case-sensitive ones, and those with back-references (numbering shifts). */
  readonly alone: readonly Compiled[];
  /** The rules recent texts matched, by text (see VERDICTS_KEPT). */
  readonly verdicts: Map<string, readonly Rule[]>;
}

/**
 * Verdicts kept per part: logs repeat their user agents (a few thousand make most requests) and much of their
 * paths, and a part's verdict is a function of its text, while testing the rules' alternation costs
 * microseconds on a long agent. Emptied when full; texts longer than VERDICT_MAX_CHARS are not kept, so the
 * cache holds at most a few MiB.
 */
const VERDICTS_KEPT = 10_000;
const VERDICT_MAX_CHARS = 512;
const NO_RULES: readonly Rule[] = Object.freeze([]);

export interface SignatureMatch {
  readonly rules: string[];
  readonly categories: string[];
}

export class Signatures {
  /** In TARGETS order, the targets some rule reads. */
  private readonly matchers: TargetMatcher[] = [];
  readonly size: number;

  constructor(rules: readonly Rule[]) {
    this.size = rules.length;
    for (const target of TARGETS) {
      const compiled = rules
        .filter((r) => r.in.includes(target))
        .map((rule) => ({ rule, regex: new RegExp(rule.pattern, rule.caseSensitive ? '' : 'i') }));
      if (compiled.length === 0) continue;
      const joined = compiled.filter((c) => !c.rule.caseSensitive && !/\\[1-9]|\\k</.test(c.rule.pattern));
      const alone = compiled.filter((c) => !joined.includes(c));
      let any: RegExp | undefined;
      if (joined.length > 0) {
        try {
          any = new RegExp(joined.map((c) => `(?:${c.rule.pattern})`).join('|'), 'i');
        } catch {
          // Named groups repeated across rules, say: test every rule alone rather than refuse valid rules.
          any = undefined;
        }
      }
      const verdicts = new Map<string, readonly Rule[]>();
      this.matchers.push(
        any
          ? { target, any, joined, alone, verdicts }
          : { target, any: undefined, joined: [], alone: compiled, verdicts },
      );
    }
  }

  /** Whether some rule reads `target`. */
  reads(target: Target): boolean {
    return this.matchers.some((m) => m.target === target);
  }

  /** The rules the request's parts match (each once, in the order found), or undefined for none. */
  match(parts: Partial<Record<Target, string>>): SignatureMatch | undefined {
    let rules: string[] | undefined;
    let categories: string[] | undefined;
    for (const matcher of this.matchers) {
      const raw = parts[matcher.target];
      if (raw === undefined || raw === '') continue;
      const hits = this.hits(matcher, raw);
      for (const rule of hits) {
        rules ??= [];
        categories ??= [];
        if (!rules.includes(rule.id)) rules.push(rule.id);
        if (!categories.includes(rule.category)) categories.push(rule.category);
      }
    }
    return rules && categories ? { rules, categories } : undefined;
  }

  /** The rules of one target that `raw` matches, in the order they are tested. */
  private hits(matcher: TargetMatcher, raw: string): readonly Rule[] {
    const kept = raw.length <= VERDICT_MAX_CHARS;
    if (kept) {
      const known = matcher.verdicts.get(raw);
      if (known !== undefined) return known;
    }
    const text = normalize(matcher.target, raw.length > MAX_CHARS ? raw.slice(0, MAX_CHARS) : raw);
    const found: Rule[] = [];
    if (matcher.any?.test(text)) {
      for (const c of matcher.joined) if (c.regex.test(text)) found.push(c.rule);
    }
    for (const c of matcher.alone) if (c.regex.test(text)) found.push(c.rule);
    const hits = found.length > 0 ? found : NO_RULES;
    if (kept) {
      if (matcher.verdicts.size >= VERDICTS_KEPT) matcher.verdicts.clear();
      matcher.verdicts.set(cacheKey(raw), hits);
    }
    return hits;
  }
}

/**
 * What the rules read: paths, queries and referrers percent-decoded twice (attacks are sent encoded, sometimes
 * encoded twice, to slip past filters), `+` as a space in queries. Bytes decode one to one (as Latin-1), so a
 * malformed or partial escape never throws and an overlong UTF-8 sequence stays visible to the rules.
 */
export function normalize(target: Target, text: string): string {
  if (target === 'user_agent') return text;
  let out = target === 'query' ? text.replaceAll('+', ' ') : text;
  for (let round = 0; round < 2 && out.includes('%'); round++) out = percentDecode(out);
  return out;
}

function percentDecode(text: string): string {
  return text.replace(/%([0-9a-f]{2})/gi, (_m, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
}
