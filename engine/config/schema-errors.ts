/**
 * Turns Ajv errors into one plain-language problem per real problem: branch noise of `anyOf`/`oneOf`
 * collapsed, `if`/discriminator bookkeeping dropped, a misspelt key reported once (not also as the
 * required key it was meant to be), with what was expected and what was found.
 */
import type { ErrorObject } from 'ajv';
import type { ErrorCode } from '../errors.ts';
import { type DocPath, type PathSegment, type Problem, pathText } from './document.ts';
import { SECTION_SYNONYMS } from '../schema/envelope.ts';
import { didYouMean, list } from './suggest.ts';

type AjvError = ErrorObject<string, Record<string, unknown>, unknown>;
type SchemaObject = { [keyword: string]: unknown };

/** Ajv's `/spec/sources/a~1b/paths/0` → ['spec', 'sources', 'a/b', 'paths', 0], indices as numbers. */
export function decodePointer(pointer: string, data: unknown): PathSegment[] {
  if (pointer === '') return [];
  const path: PathSegment[] = [];
  let current: unknown = data;
  for (const raw of pointer.slice(1).split('/')) {
    const segment = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(current)) {
      const index = Number(segment);
      path.push(index);
      current = current[index];
    } else {
      path.push(segment);
      current = current !== null && typeof current === 'object' ? (current as SchemaObject)[segment] : undefined;
    }
  }
  return path;
}

export function translateAjvErrors(errors: readonly AjvError[], data: unknown): Problem[] {
  const consumed = new Set<number>();
  const kept: AjvError[] = [];
  // Composite errors come right after the errors of their branches; handle them first.
  errors.forEach((error, index) => {
    if (error.keyword === 'anyOf' || error.keyword === 'oneOf') resolveComposite(errors, index, consumed);
  });
  errors.forEach((error, index) => {
    if (consumed.has(index) || IGNORED_KEYWORDS.has(error.keyword)) return;
    if (error.schemaPath.includes('/propertyNames/')) return; // reported by its `propertyNames` error
    kept.push(error);
  });

  const problems: Translated[] = [];
  const misspelt = new Set<string>();
  for (const error of kept) {
    const problem = translate(error, data);
    if (problem.suggestion !== undefined) misspelt.add(`${pathText(problem.objectPath)}\u0000${problem.suggestion}`);
    problems.push(problem);
  }
  const seen = new Set<string>();
  const out: Problem[] = [];
  for (const { objectPath, suggestion: _suggestion, missing, ...problem } of problems) {
    if (missing !== undefined && misspelt.has(`${pathText(objectPath)}\u0000${missing}`)) continue;
    const key = `${pathText(problem.path)}\u0000${problem.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(problem);
  }
  return out;
}

// `if` only says "must match then"; the discriminator's own errors are reported by the stage type check.
const IGNORED_KEYWORDS = new Set(['if', 'discriminator']);

interface Translated extends Problem {
  /** The object an unknown key or missing key belongs to. */
  readonly objectPath: DocPath;
  /** For an unknown key: the known key it probably meant. */
  readonly suggestion?: string;
  /** For a missing required key: its name. */
  readonly missing?: string;
}

/**
 * Keeps the errors of the one branch the value was evidently meant for (the only branch whose `type`
 * fits the value); otherwise the composite error alone stands for all of them.
 */
function resolveComposite(errors: readonly AjvError[], index: number, consumed: Set<number>): void {
  const composite = errors[index] as AjvError;
  const branches = (composite.schema as SchemaObject[] | undefined) ?? [];
  const prefix = `${composite.schemaPath}/`;
  const parentPrefix = composite.schemaPath.slice(0, composite.schemaPath.lastIndexOf('/') + 1);
  const members: number[] = [];
  for (let j = index - 1; j >= 0; j--) {
    const e = errors[j] as AjvError;
    if (!within(e.instancePath, composite.instancePath)) break;
    if (e.schemaPath.startsWith(parentPrefix) && !e.schemaPath.startsWith(prefix)) break; // a sibling keyword
    if (!consumed.has(j)) members.push(j);
  }
  const fitting = branches.map((b, i) => (typeFits(b, composite.data) ? i : -1)).filter((i) => i >= 0);
  const only = fitting.length === 1 ? (fitting[0] as number) : meantBranch(branches, fitting, composite.data);
  const onlyPrefix = `${prefix}${only}/`;
  const separable = only >= 0 && members.every((j) => (errors[j] as AjvError).schemaPath.startsWith(prefix));
  if (separable && composite.params.passingSchemas == null) {
    consumed.add(index);
    for (const j of members) if (!(errors[j] as AjvError).schemaPath.startsWith(onlyPrefix)) consumed.add(j);
  } else {
    for (const j of members) consumed.add(j);
  }
}

/**
 * Among object forms told apart by a required key (a rule is `{ name, ip }` or `{ name, status }`), the one a map
 * was meant as: the only one whose required keys it has, else the only one whose missing required keys it holds
 * misspelt (`nonnegative` for `non_negative`), so that the error names that key instead of listing every form.
 * -1 when no single form stands out.
 */
function meantBranch(branches: readonly SchemaObject[], fitting: readonly number[], value: unknown): number {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return -1;
  const keys = Object.keys(value);
  const score = (branch: SchemaObject): number => {
    const required = (branch.required as string[] | undefined) ?? [];
    const missing = required.filter((key) => !keys.includes(key));
    if (missing.length === 0) return 2;
    const known = new Set(Object.keys((branch.properties as object | undefined) ?? {}));
    const unknown = keys.filter((key) => !known.has(key));
    return missing.every((key) => unknown.some((u) => didYouMean(u, [key]) === key)) ? 1 : 0;
  };
  const scores = fitting.map((i) => score(branches[i] as SchemaObject));
  const best = Math.max(0, ...scores);
  const at = scores.flatMap((s, j) => (s === best ? [fitting[j] as number] : []));
  return best > 0 && at.length === 1 ? (at[0] as number) : -1;
}

function within(path: string, parent: string): boolean {
  return path === parent || path.startsWith(`${parent}/`);
}

function typeFits(branch: SchemaObject | undefined, value: unknown): boolean {
  const declared = branch?.type;
  if (declared === undefined) return false;
  const types = Array.isArray(declared) ? (declared as string[]) : [String(declared)];
  const actual = jsonType(value);
  return types.some((t) => t === actual || (t === 'number' && actual === 'integer'));
}

function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function translate(error: AjvError, data: unknown): Translated {
  const path = decodePointer(error.instancePath, data);
  const params = error.params;
  const what = subject(path);
  const found = describeValue(error.data);
  const problem = (code: ErrorCode, message: string, extra: Partial<Translated> = {}): Translated => ({
    path,
    objectPath: path,
    code,
    message,
    ...extra,
  });
  switch (error.keyword) {
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const allowed = Object.keys(((error.parentSchema as SchemaObject | undefined)?.properties ?? {}) as object);
      const meant = path.length === 1 && path[0] === 'spec' ? SECTION_SYNONYMS[key] : undefined;
      if (meant !== undefined) {
        return {
          path: [...path, key],
          objectPath: path,
          code: 'ETL_CFG_UNKNOWN_KEY',
          message: `unknown key \`${key}\` — its stages go under \`${meant}\``,
          hint: `rename \`${key}:\` to \`${meant}:\` (the sections are sources, operators and sinks)`,
          target: 'key',
          suggestion: meant,
        };
      }
      const suggestion = didYouMean(key, allowed);
      const hint =
        isSourceStage(path) && key === 'inputs'
          ? 'sources read from outside the pipeline; they take no `inputs`'
          : allowed.length > 0
            ? `allowed keys here: ${list(allowed)}`
            : 'this map takes no keys';
      return {
        path: [...path, key],
        objectPath: path,
        code: 'ETL_CFG_UNKNOWN_KEY',
        message: `unknown key \`${key}\`${suggestion ? ` — did you mean \`${suggestion}\`?` : ''}`,
        hint,
        target: 'key',
        ...(suggestion === undefined ? {} : { suggestion }),
      };
    }
    case 'required': {
      const missing = String(params.missingProperty);
      const owner = path.length === 0 ? 'the document' : what;
      return problem('ETL_CFG_SCHEMA', `${owner} is missing the required key \`${missing}\``, {
        target: 'key',
        missing,
      });
    }
    case 'type':
      return problem('ETL_CFG_SCHEMA', `${what} must be ${expectedTypes(params.type)}; found ${found}`);
    case 'enum': {
      const allowed = (params.allowedValues as unknown[]).map(String);
      const near = typeof error.data === 'string' ? didYouMean(error.data, allowed) : undefined;
      return problem('ETL_CFG_INVALID', `${what} must be one of ${list(allowed.map(code))}; found ${found}`, {
        ...(near === undefined ? {} : { hint: `did you mean \`${near}\`?` }),
      });
    }
    case 'const':
      return problem('ETL_CFG_INVALID', `${what} must be ${code(String(params.allowedValue))}; found ${found}`);
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return problem('ETL_CFG_INVALID', `${what} must be ${params.comparison} ${params.limit}; found ${found}`);
    case 'multipleOf':
      return problem('ETL_CFG_INVALID', `${what} must be a multiple of ${params.multipleOf}; found ${found}`);
    case 'minLength':
      return problem(
        'ETL_CFG_INVALID',
        Number(params.limit) === 1
          ? `${what} must not be empty`
          : `${what} must be at least ${params.limit} characters long`,
      );
    case 'maxLength':
      return problem('ETL_CFG_INVALID', `${what} must be at most ${params.limit} characters long`);
    case 'minItems':
      return problem('ETL_CFG_INVALID', `${what} must list at least ${count(params.limit, 'item')}`);
    case 'maxItems':
      return problem('ETL_CFG_INVALID', `${what} must list at most ${count(params.limit, 'item')}`);
    case 'minProperties':
      return problem('ETL_CFG_INVALID', `${what} must hold at least ${count(params.limit, 'entry', 'entries')}`);
    case 'maxProperties':
      return problem('ETL_CFG_INVALID', `${what} must hold at most ${count(params.limit, 'entry', 'entries')}`);
    case 'uniqueItems':
      return problem('ETL_CFG_INVALID', `${what} lists the same value twice (items ${params.j} and ${params.i})`);
    case 'pattern':
      return problem('ETL_CFG_INVALID', `${what} must match the pattern \`${params.pattern}\`; found ${found}`);
    case 'format':
      return problem('ETL_CFG_INVALID', `${what} must be a valid ${params.format}; found ${found}`);
    case 'propertyNames': {
      const name = String(params.propertyName);
      const keyPath = [...path, name];
      return isStageSection(path)
        ? {
            path: keyPath,
            objectPath: path,
            code: 'ETL_CFG_INVALID',
            message: `invalid stage id \`${name}\``,
            hint: 'a stage id starts with a letter and holds letters, digits, `_` and `-`; `.` is reserved for ports',
            target: 'key',
          }
        : {
            path: keyPath,
            objectPath: path,
            code: 'ETL_CFG_INVALID',
            message: `invalid key \`${name}\``,
            target: 'key',
          };
    }
    case 'dependencies':
    case 'dependentRequired':
      return problem(
        'ETL_CFG_SCHEMA',
        `\`${params.property}\` requires \`${params.missingProperty}\` to be set as well`,
        { target: 'key' },
      );
    case 'anyOf':
    case 'oneOf': {
      if (params.passingSchemas != null) {
        return problem('ETL_CFG_SCHEMA', `${what} matches more than one of its allowed forms; make it unambiguous`);
      }
      const branches = (error.schema as SchemaObject[] | undefined) ?? [];
      const forms = [...new Set(branches.map(describeSchema))];
      const named = branches.flatMap((b) => [
        ...(b.const === undefined ? [] : [b.const]),
        ...((b.enum as unknown[]) ?? []),
      ]);
      const near = typeof error.data === 'string' ? didYouMean(error.data, named.map(String)) : undefined;
      const suffix = near === undefined ? '' : ` — did you mean \`${near}\`?`;
      return problem('ETL_CFG_SCHEMA', `${what} must be ${orList(forms)}; found ${found}${suffix}`);
    }
    case 'false schema':
      return problem('ETL_CFG_SCHEMA', `${what} is not allowed here`, { target: 'key' });
    case 'not':
      return problem('ETL_CFG_INVALID', `${what} has a value that is not allowed: ${found}`);
    default:
      return problem('ETL_CFG_SCHEMA', `${what} ${error.message ?? 'is invalid'}`);
  }
}

function isStageSection(path: DocPath): boolean {
  return path.length === 2 && path[0] === 'spec' && ['sources', 'operators', 'sinks'].includes(String(path[1]));
}

function isSourceStage(path: DocPath): boolean {
  return path.length === 3 && path[0] === 'spec' && path[1] === 'sources';
}

/** How a message names the value at `path`: `paths[0]`, `follow`, the document. */
function subject(path: DocPath): string {
  if (path.length === 0) return 'the document';
  const last = path[path.length - 1];
  if (typeof last === 'number') {
    let start = path.length - 1;
    while (start > 0 && typeof path[start - 1] === 'number') start--;
    return code(pathText(path.slice(Math.max(0, start - 1))));
  }
  return code(String(last));
}

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
  array: 'a list',
  object: 'a map',
  null: 'empty (null)',
};

function expectedTypes(type: unknown): string {
  const types = Array.isArray(type) ? type.map(String) : String(type).split(',');
  return types.map((t) => TYPE_NAMES[t] ?? t).join(' or ');
}

/** `a, b or c` */
function orList(items: readonly string[]): string {
  return items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} or ${items.at(-1)}`;
}

function describeSchema(schema: SchemaObject): string {
  if (schema.const !== undefined) return code(String(schema.const));
  if (Array.isArray(schema.enum)) return `one of ${list(schema.enum.map((v) => code(String(v))))}`;
  const required = schema.required as string[] | undefined;
  if (schema.type === 'object' && required?.length) return `a map with ${list(required.map(code))}`;
  if (schema.type !== undefined) {
    const base = expectedTypes(schema.type);
    const items = schema.items as SchemaObject | undefined;
    return schema.type === 'array' && items?.type !== undefined ? `a list of ${pluralType(items.type)}` : base;
  }
  return 'another allowed form';
}

function pluralType(type: unknown): string {
  const plural: Record<string, string> = { string: 'strings', integer: 'integers', number: 'numbers', object: 'maps' };
  return plural[String(type)] ?? String(type);
}

const MAX_SHOWN = 60;

export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'nothing (null)';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  if (typeof value === 'string') {
    const shown = value.length > MAX_SHOWN ? `${value.slice(0, MAX_SHOWN)}…` : value;
    return `the string ${JSON.stringify(shown)}`;
  }
  if (typeof value === 'number') return `the number ${value}`;
  return String(value);
}

function code(text: string): string {
  return `\`${text}\``;
}

function count(limit: unknown, noun: string, plural = `${noun}s`): string {
  return `${limit} ${Number(limit) === 1 ? noun : plural}`;
}
