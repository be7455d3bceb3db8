/**
 * Rules made into checks: each takes a record and the processing time and returns why the record fails it, or
 * undefined. Checks never throw (validate.ts also guards them): a value of an unexpected type fails the rule.
 */
import ipaddr from 'ipaddr.js';
import { compileCondition, expressionOptionProblem } from '../../../engine/expression.ts';
import type { FieldUse, OptionProblem } from '../../../engine/operator.ts';
import type { EtlRecord } from '../../../engine/record.ts';
import type { RecordSchema } from '../../../engine/record-schema.ts';
import { cacheKey } from '../../shared/cache-key.ts';
import { fieldGetter } from '../../shared/fields.ts';
import { dottedQuad } from '../../shared/ip-address.ts';
import type { CheckName, Rule } from './schema.ts';

export type Check = (record: EtlRecord, now: number) => string | undefined;
export type Action = 'dead_letter' | 'drop' | 'flag';

export interface CompiledRule {
  readonly name: string;
  readonly action: Action;
  readonly check: Check;
}

export const DEFAULT_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE'];

/** The check a rule holds (its one key besides `name` and `action`). */
export function checkOf(rule: Rule): CheckName {
  for (const key of Object.keys(rule)) if (key !== 'name' && key !== 'action') return key as CheckName;
  throw new Error(`rule ${rule.name} holds no check`);
}

/** The fields a rule's options name, for the graph pass. */
export function ruleFields(rule: Rule, index: number): FieldUse[] {
  if ('required' in rule) {
    return rule.required.fields.map((field, j) => ({ path: ['rules', index, 'required', 'fields', j], field }));
  }
  if ('condition' in rule) return [];
  const check = checkOf(rule);
  const field = (rule as unknown as Record<string, { field: string }>)[check]?.field;
  return field === undefined ? [] : [{ path: ['rules', index, check, 'field'], field }];
}

/** The JSON types a check can pass, for the check of a field declared with none of them. */
const TAKES: Partial<Record<CheckName, readonly string[]>> = {
  ip: ['string'],
  timestamp: ['string'],
  path: ['string'],
  url: ['string'],
  method: ['string'],
  regex: ['string'],
  status: ['integer', 'number'],
  non_negative: ['integer', 'number'],
  range: ['integer', 'number'],
};

/**
 * A warning when the schema reaching the stage declares the rule's field with types the check always fails on
 * (an `ip` check on an integer field): null aside, every record with a value would fail it.
 */
export function typeMismatch(rule: Rule, index: number, schema: RecordSchema): OptionProblem | undefined {
  const check = checkOf(rule);
  const takes = TAKES[check];
  const use = ruleFields(rule, index)[0];
  if (takes === undefined || use === undefined) return undefined;
  const declared = schema.properties?.[use.field]?.type;
  if (declared === undefined) return undefined;
  const types = (typeof declared === 'string' ? [declared] : [...declared]).filter((t) => t !== 'null');
  if (types.length === 0 || types.some((t) => takes.includes(t))) return undefined;
  return {
    path: [...use.path],
    message: `\`${use.field}\` is ${types.join(' or ')} here: the \`${check}\` check fails on every value it has`,
    hint: `the \`${check}\` check takes ${takes.join(' or ')} values`,
    severity: 'warning',
  };
}

/** Shows a value in a reason: JSON, cut to 80 characters. */
function shown(value: unknown): string {
  let text: string;
  try {
    text = typeof value === 'bigint' ? String(value) : (JSON.stringify(value) ?? String(value));
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 77)}…` : text;
}

/** A check on one field's value; null and absent values pass when `allowNull`. */
function onField(
  field: string,
  allowNull: boolean | undefined,
  test: (value: unknown, now: number) => string | undefined,
): Check {
  const read = fieldGetter(field);
  return (record, now) => {
    const value = read(record);
    if (value === null || value === undefined) {
      return allowNull === false ? `\`${field}\` is ${value === null ? 'null' : 'absent'}` : undefined;
    }
    const why = test(value, now);
    return why === undefined ? undefined : `\`${field}\` ${shown(value)} ${why}`;
  };
}

/** Spaces, control characters and `%` not followed by two hex digits. */
const MALFORMED = /[\u0000-\u0020\u007f]|%(?![0-9A-Fa-f]{2})/;

function malformed(text: string): string | undefined {
  const match = MALFORMED.exec(text);
  if (match === null) return undefined;
  return match[0] === '%' ? 'has a `%` not followed by two hex digits' : 'has a space or control character';
}

/** Verdicts kept per rule: logs repeat their clients and referrers, and parsing them takes microseconds. */
const VERDICT_CACHE_SIZE = 50_000;

/** `test` with the verdicts on strings it gave recently kept (the cache is emptied when it fills up). */
function remembering(test: (value: string) => string | undefined): (value: unknown) => string | undefined {
  // '' for a pass: one lookup tells a known verdict from one to make.
  const verdicts = new Map<string, string>();
  return (value) => {
    if (typeof value !== 'string') return 'is not a string';
    let verdict = verdicts.get(value);
    if (verdict === undefined) {
      verdict = test(value) ?? '';
      if (verdicts.size >= VERDICT_CACHE_SIZE) verdicts.clear();
      verdicts.set(cacheKey(value), verdict);
    }
    return verdict === '' ? undefined : verdict;
  };
}

function ipVerdict(value: string, version: string, publicOnly: boolean): string | undefined {
  // ipaddr.isValid takes forms no server writes (`0x7f.1`, `127.1`): IPv4 must be written as four decimal parts.
  // The four-part form has no `:`; asked of IPv6 text, ipaddr.js's IPv4 check throws and catches an error.
  if (!(value.includes(':') ? ipaddr.IPv6.isValid(value) : ipaddr.IPv4.isValidFourPartDecimal(value))) {
    return 'is not an IP address';
  }
  // Any address passes: the family and range need not be computed (ipaddr.js's range() tests every block).
  if (version === 'any' && !publicOnly) return undefined;
  let address = ipaddr.parse(value);
  if (address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress()) {
    address = (address as ipaddr.IPv6).toIPv4Address();
  }
  if (version === '4' && address.kind() !== 'ipv4') return 'is not an IPv4 address';
  if (version === '6' && address.kind() !== 'ipv6') return 'is not an IPv6 address';
  if (publicOnly) {
    const range = address.range();
    if (range !== 'unicast') return `is not a public address (${range})`;
  }
  return undefined;
}

function timestampCheck(maxFutureMs: number, maxAgeMs: number | undefined) {
  // Records come in time order, many within the same second: the last text parsed is often the next one.
  let lastText: unknown;
  let lastTime = Number.NaN;
  return (value: unknown, now: number): string | undefined => {
    if (value !== lastText) {
      lastText = value;
      lastTime = typeof value === 'string' ? Date.parse(value) : Number.NaN;
    }
    const time = lastTime;
    if (Number.isNaN(time)) return 'is not a date-time';
    if (time > now + maxFutureMs) return `is ${seconds(time - now)} in the future (more than ${seconds(maxFutureMs)})`;
    if (maxAgeMs !== undefined && time < now - maxAgeMs) {
      return `is ${seconds(now - time)} old (more than ${seconds(maxAgeMs)})`;
    }
    return undefined;
  };
}

function seconds(ms: number): string {
  return `${Math.round(ms / 1000)} s`;
}

/**
 * The check of one rule against records of `schema` (what the graph pass computed for the stage's input; the
 * open schema when unknown). Problems are what `etl validate` reports; a rule with problems has no check.
 */
export function compileRule(
  rule: Rule,
  index: number,
  schema: RecordSchema,
): { rule: CompiledRule } | { problems: OptionProblem[] } {
  const action = (rule.action ?? 'dead_letter') as Action;
  const made = (check: Check) => ({ rule: { name: rule.name, action, check } });
  if ('condition' in rule) {
    const compiled = compileCondition(rule.condition, schema);
    if ('problem' in compiled) {
      return { problems: [expressionOptionProblem(['rules', index, 'condition'], compiled.problem)] };
    }
    const condition = compiled.condition;
    return made((record) => {
      const result = condition.evaluate(record);
      if (!result.ok) return `condition could not be evaluated: ${result.error}`;
      return result.value ? undefined : 'condition is false';
    });
  }
  if ('required' in rule) {
    const fields = rule.required.fields;
    const reads = fields.map(fieldGetter);
    return made((record) => {
      let complete = true;
      for (const read of reads) {
        const value = read(record);
        if (value === null || value === undefined) complete = false;
      }
      if (complete) return undefined;
      const missing = fields.filter((f) => record[f] === null || record[f] === undefined);
      return `${missing.map((f) => `\`${f}\``).join(', ')} ${missing.length === 1 ? 'has' : 'have'} no value`;
    });
  }
  if ('ip' in rule) {
    const { field, allow_null, version, public_only } = rule.ip;
    const kind = version ?? 'any';
    const publicOnly = public_only ?? false;
    const verdict = remembering((value) => ipVerdict(value, kind, publicOnly));
    // Dotted IPv4, what most logs hold, is read by hand in a tenth of the time of a cache lookup plus, on a
    // miss, ipaddr.js's two regular expressions: the same verdict as ipVerdict's (dottedQuad agrees with
    // ipaddr.js's four-part form). A public_only check still goes through ipaddr.js's ranges, remembered.
    const v4Verdict = kind === '6' ? 'is not an IPv6 address' : undefined;
    return made(
      onField(field, allow_null, (value) =>
        !publicOnly && typeof value === 'string' && dottedQuad(value) !== undefined ? v4Verdict : verdict(value),
      ),
    );
  }
  if ('timestamp' in rule) {
    const { field, allow_null, max_future_seconds, max_age_seconds } = rule.timestamp;
    const test = timestampCheck((max_future_seconds ?? 300) * 1000, max_age_seconds && max_age_seconds * 1000);
    return made(onField(field, allow_null, test));
  }
  if ('path' in rule) {
    const { field, allow_null, max_length } = rule.path;
    const max = max_length ?? 8192;
    return made(
      onField(field, allow_null, (value) => {
        if (typeof value !== 'string') return 'is not a string';
        if (value.length > max) return `is longer than ${max} characters`;
        if (!value.startsWith('/') && value !== '*') return 'does not start with `/`';
        return malformed(value);
      }),
    );
  }
  if ('url' in rule) {
    const { field, allow_null, max_length, schemes } = rule.url;
    const max = max_length ?? 8192;
    const allowed = new Set((schemes ?? ['http', 'https']).map((s) => `${s}:`));
    return made(
      onField(
        field,
        allow_null,
        remembering((value) => {
          if (value.length > max) return `is longer than ${max} characters`;
          const bad = malformed(value);
          if (bad !== undefined) return bad;
          const url = URL.parse(value);
          if (url === null) return 'is not a URL';
          if (!allowed.has(url.protocol)) {
            return `has scheme ${url.protocol.slice(0, -1)}, not ${[...allowed].join(' ')}`;
          }
          return undefined;
        }),
      ),
    );
  }
  if ('method' in rule) {
    const { field, allow_null, allowed } = rule.method;
    const methods = new Set(allowed ?? DEFAULT_METHODS);
    return made(
      onField(field, allow_null, (value) =>
        typeof value === 'string' && methods.has(value) ? undefined : 'is not an allowed method',
      ),
    );
  }
  if ('status' in rule) {
    const { field, allow_null } = rule.status;
    return made(
      onField(field, allow_null, (value) =>
        Number.isInteger(value) && (value as number) >= 100 && (value as number) <= 599
          ? undefined
          : 'is not an HTTP status (an integer from 100 to 599)',
      ),
    );
  }
  if ('non_negative' in rule) {
    const { field, allow_null } = rule.non_negative;
    return made(
      onField(field, allow_null, (value) =>
        typeof value === 'number' && value >= 0 ? undefined : 'is not a number ≥ 0',
      ),
    );
  }
  if ('regex' in rule) {
    const { field, allow_null, pattern, ignore_case } = rule.regex;
    let regex: RegExp;
    try {
      regex = new RegExp(pattern, ignore_case ? 'iu' : 'u');
    } catch (error) {
      return {
        problems: [{ path: ['rules', index, 'regex', 'pattern'], message: (error as Error).message }],
      };
    }
    return made(
      onField(field, allow_null, (value) => {
        if (typeof value !== 'string') return 'is not a string';
        return regex.test(value) ? undefined : `does not match /${pattern}/`;
      }),
    );
  }
  if ('enum' in rule) {
    const { field, allow_null, values } = rule.enum;
    const valid = new Set<unknown>(values);
    return made(onField(field, allow_null, (value) => (valid.has(value) ? undefined : 'is not one of the values')));
  }
  if ('range' in rule) {
    const { field, allow_null, min, max } = rule.range;
    return made(
      onField(field, allow_null, (value) => {
        if (typeof value !== 'number' || Number.isNaN(value)) return 'is not a number';
        if (min !== undefined && value < min) return `is below ${min}`;
        if (max !== undefined && value > max) return `is above ${max}`;
        return undefined;
      }),
    );
  }
  return { problems: [{ path: ['rules', index], message: `rule ${(rule as Rule).name} holds no check` }] };
}
