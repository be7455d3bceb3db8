/**
 * Conditions over records in the Common Expression Language (CEL, https://cel.dev), the language Kubernetes
 * and Envoy use for such rules: safe (no side effects, no loops without bound, no I/O), documented, typed. One
 * module for every operator with a condition (`validate`'s `condition` rules, `when:` of later operators).
 *
 * A record is the variable `record`: `record.status >= 500 && record.method in ["GET", "HEAD"]`. Against a closed
 * record schema (what `parse` emits) the expression is type-checked when the pipeline is validated: a misspelt
 * field (`record.statsu`) or a type error (`record.method > 5`) is refused with its place in the expression.
 * Against an open schema, `record` is a map of any values, checked only when it runs.
 * - Integer fields are CEL `int` (`record.status == 404`), number fields `double` (`record.request_time_ms > 250.0`;
 *   `<`/`>` also take an int literal, `==` does not), strings, booleans, lists and maps (`record.extra["k"]`) as
 *   such; timestamps are strings (`timestamp(record.timestamp)`).
 * - A null field is absent, as an unset field of a message is in CEL: `has(record.user)` tells whether it has a
 *   value, and reading it without one is an error. Fields whose names are not identifiers cannot be named.
 *
 * Implementation: @marcbachmann/cel-js, chosen by per-record speed among the CEL evaluators on npm, and because it
 * alone type-checks against declared variables. `node bench/cel.ts` (one condition over 4 fields, compiled once,
 * 200,000–300,000 evaluations, Node 24, a 2-core machine shared with other jobs), ns per record, three runs at load
 * average below 3 then four at 10–12: @marcbachmann/cel-js 8.0.0 240–420 / 300–710, @bufbuild/cel 0.6.1 525–785 /
 * 545–1,790, cel-js 0.8.2 3,500–5,000 / 8,500–16,800 (and it lacks `startsWith`); plain JavaScript 12–29 / 9–38.
 * The order never changed. Through this module (a typed view of the fields read, integers made BigInt): 480–600 /
 * 970–1,630.
 * Its `matches()` uses JavaScript regular expressions, not RE2.
 */
import { createRequire } from 'node:module';
import type { Environment, ParseResult } from '@marcbachmann/cel-js';
import { didYouMeanSuffix } from './config/suggest.ts';
import type { OptionProblem } from './operator.ts';
import type { EtlRecord } from './record.ts';
import type { FieldSchema, JsonType, RecordSchema } from './record-schema.ts';

/**
 * The CEL library, loaded when the first expression is compiled: every `etl validate` loads the registry and
 * with it this module, and most pipelines hold no expression (the library is ~60 ms of a 150 ms start).
 * `require` of an ES module is synchronous since Node 22.12, as compiling at validate time must be.
 */
let cel: typeof import('@marcbachmann/cel-js') | undefined;
function celLibrary(): typeof import('@marcbachmann/cel-js') {
  cel ??= createRequire(import.meta.url)('@marcbachmann/cel-js') as typeof import('@marcbachmann/cel-js');
  return cel;
}

/** What is wrong with an expression, and where: `offset` is a character offset into its text. */
export interface ExpressionProblem {
  readonly message: string;
  readonly offset: number;
  /** Set when the expression names a field the records cannot carry. */
  readonly unknownField?: string;
}

/** The outcome of one evaluation: never a throw. */
export type ConditionResult =
  | { readonly ok: true; readonly value: boolean }
  | { readonly ok: false; readonly error: string };

export interface Condition {
  readonly source: string;
  /** The fields it reads (all of them when it uses `record` whole). */
  readonly fields: readonly string[];
  evaluate(record: EtlRecord): ConditionResult;
}

export type Compiled = { readonly condition: Condition } | { readonly problem: ExpressionProblem };

/**
 * An expression's problem as an operator's `validate` reports it: at the option holding the expression, with the
 * column inside it, and as an unknown field when it names one the records cannot carry.
 */
export function expressionOptionProblem(path: (string | number)[], problem: ExpressionProblem): OptionProblem {
  return {
    path,
    message: problem.message,
    offset: problem.offset,
    ...(problem.unknownField === undefined ? {} : { code: 'ETL_GRAPH_UNKNOWN_FIELD' as const }),
  };
}

/** The variable holding the record. */
export const RECORD_VARIABLE = 'record';

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** CEL's reserved words cannot be field names after a dot. */
const RESERVED = new Set(
  'as break const continue else for function if import let loop package namespace return var void while in true false null'.split(
    ' ',
  ),
);

type Convert = (value: unknown) => unknown;
interface Typing {
  readonly env: Environment;
  /** Declared fields that are readable, with how a value becomes a CEL value; undefined for an open schema. */
  readonly fields: ReadonlyMap<string, Convert> | undefined;
  readonly names: readonly string[];
  /** The class of record views of a closed schema. */
  readonly view?: new () => Record<string, unknown>;
}

/** One environment per schema, made on first use. */
const typings = new WeakMap<RecordSchema, Typing>();

function typingOf(schema: RecordSchema): Typing {
  let typing = typings.get(schema);
  if (typing === undefined) {
    typing = buildTyping(schema);
    typings.set(schema, typing);
  }
  return typing;
}

const asIs: Convert = (value) => value;
const toInt: Convert = (value) => {
  if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
  if (typeof value === 'bigint') return value;
  throw new Error(`${JSON.stringify(value)} is not an integer`);
};

function celType(field: FieldSchema): { type: string; convert: Convert } {
  const declared = field.type === undefined ? [] : typeof field.type === 'string' ? [field.type] : [...field.type];
  const types = declared.filter((t): t is Exclude<JsonType, 'null'> => t !== 'null');
  if (types.length !== 1 || field.anyOf !== undefined || field.oneOf !== undefined)
    return { type: 'dyn', convert: asIs };
  switch (types[0]) {
    case 'string':
      return { type: 'string', convert: asIs };
    case 'integer':
      return { type: 'int', convert: toInt };
    case 'number':
      return { type: 'double', convert: asIs };
    case 'boolean':
      return { type: 'bool', convert: asIs };
    case 'object':
      return { type: 'map<string, dyn>', convert: asIs };
    case 'array': {
      const items = field.items?.type;
      return { type: items === 'string' ? 'list<string>' : 'list<dyn>', convert: asIs };
    }
    default:
      return { type: 'dyn', convert: asIs };
  }
}

class RecordView {}

function buildTyping(schema: RecordSchema): Typing {
  const names = Object.keys(schema.properties ?? {});
  if (schema.additionalProperties !== false) {
    const env = new (celLibrary().Environment)().registerVariable(RECORD_VARIABLE, 'map<string, dyn>');
    return { env, fields: undefined, names };
  }
  const fields = new Map<string, Convert>();
  const declared: Record<string, string> = {};
  for (const [name, field] of Object.entries(schema.properties ?? {})) {
    if (!IDENTIFIER.test(name) || RESERVED.has(name)) continue;
    const { type, convert } = celType(field);
    declared[name] = type;
    fields.set(name, convert);
  }
  // A class of its own per schema: the library tells registered types apart by constructor.
  const View = class extends RecordView {};
  const env = new (celLibrary().Environment)()
    .registerType('Record', { ctor: View, fields: declared })
    .registerVariable(RECORD_VARIABLE, 'Record');
  return { env, fields, names, view: View as unknown as new () => Record<string, unknown> };
}

/**
 * Compiles a condition (an expression giving true or false) against the records of `schema`: parsed and
 * type-checked once, here; evaluated per record with `evaluate`.
 */
export function compileCondition(source: string, schema: RecordSchema): Compiled {
  const made = compileRun(source, schema);
  if ('problem' in made) return made;
  const { type, run, fields } = made;
  if (type !== 'bool' && type !== 'dyn') {
    return { problem: { message: `a condition must give true or false; this one gives a ${type}`, offset: 0 } };
  }
  return {
    condition: {
      source,
      fields,
      evaluate(record) {
        try {
          return result(run(record));
        } catch (error) {
          return { ok: false, error: evaluationMessage(error) };
        }
      },
    },
  };
}

/** The outcome of evaluating an expression giving any value: never a throw. */
export type ValueResult =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly error: string };

/** An expression giving a value of any type (a computed field). */
export interface Expression {
  readonly source: string;
  /** The CEL type the checker gives it: `int`, `string`, `map<string, int>`, `dyn` (not known before it runs)… */
  readonly type: string;
  readonly fields: readonly string[];
  /** The value as CEL gives it: integers are BigInt, timestamps Date, uints UnsignedInt. */
  evaluate(record: EtlRecord): ValueResult;
}

/** Compiles an expression whose value is kept (not only tested): parsed and type-checked once, here. */
export function compileExpression(
  source: string,
  schema: RecordSchema,
): { readonly expression: Expression } | { readonly problem: ExpressionProblem } {
  const made = compileRun(source, schema);
  if ('problem' in made) return made;
  const { type, run, fields } = made;
  return {
    expression: {
      source,
      type,
      fields,
      evaluate(record) {
        try {
          return { ok: true, value: run(record) };
        } catch (error) {
          return { ok: false, error: evaluationMessage(error) };
        }
      },
    },
  };
}

interface Run {
  readonly type: string;
  readonly fields: readonly string[];
  /** Evaluates; throws what the library throws. */
  readonly run: (record: EtlRecord) => unknown;
}

function compileRun(source: string, schema: RecordSchema): Run | { readonly problem: ExpressionProblem } {
  const typing = typingOf(schema);
  let parsed: ParseResult;
  try {
    parsed = typing.env.parse(source);
  } catch (error) {
    return { problem: problemOf(error, source, typing) };
  }
  const checked = parsed.check();
  if (!checked.valid) return { problem: problemOf(checked.error, source, typing) };
  const type = String(checked.type);
  const used = fieldsUsed(parsed.ast);
  const fields = typing.fields;
  if (fields === undefined || typing.view === undefined) {
    const openFields = used ?? typing.names;
    return { type, fields: openFields, run: openRun(parsed, used) };
  }
  const read = (used ?? [...fields.keys()]).filter((name) => fields.has(name));
  return { type, fields: read, run: typedRun(parsed, read, fields, typing.view) };
}

function typedRun(
  parsed: ParseResult,
  read: readonly string[],
  fields: ReadonlyMap<string, Convert>,
  View: new () => Record<string, unknown>,
): (record: EtlRecord) => unknown {
  const converts = read.map((name) => fields.get(name) as Convert);
  const context: { record: Record<string, unknown> | undefined } = { record: undefined };
  return (record) => {
    try {
      // Only the fields the expression reads are copied; nulls are left out (absent, for `has()`).
      const view = new View();
      for (let i = 0; i < read.length; i++) {
        const name = read[i] as string;
        const value = record[name];
        if (value !== null && value !== undefined) view[name] = (converts[i] as Convert)(value);
      }
      context.record = view;
      return parsed(context);
    } finally {
      context.record = undefined;
    }
  };
}

/** Over an open schema: the fields the expression reads when they are known, else every field of the record. */
function openRun(parsed: ParseResult, used: readonly string[] | undefined): (record: EtlRecord) => unknown {
  return (record) => {
    const view: Record<string, unknown> = {};
    if (used === undefined) {
      for (const name in record) {
        const value = record[name];
        if (value !== null && value !== undefined) view[name] = value;
      }
    } else {
      for (let i = 0; i < used.length; i++) {
        const name = used[i] as string;
        const value = record[name];
        if (value !== null && value !== undefined) view[name] = value;
      }
    }
    return parsed({ [RECORD_VARIABLE]: view });
  };
}

/** The two results of a condition that evaluates, made once: evaluation allocates nothing for them. */
const TRUE: ConditionResult = Object.freeze({ ok: true, value: true });
const FALSE: ConditionResult = Object.freeze({ ok: true, value: false });

function result(value: unknown): ConditionResult {
  if (value === true) return TRUE;
  if (value === false) return FALSE;
  return { ok: false, error: `gave ${typeof value === 'bigint' ? value : JSON.stringify(value)}, not true or false` };
}

function evaluationMessage(error: unknown): string {
  const summary = celSummary(error);
  const missing = /^No such key: (.+)$/.exec(summary);
  if (!missing) return summary;
  const node = (error as { node?: unknown }).node;
  if (isAst(node) && node.op === '.' && Array.isArray(node.args)) {
    const target: unknown = node.args[0];
    if (isAst(target) && target.op === 'id' && target.args === RECORD_VARIABLE) {
      return `\`${missing[1]}\` is null or absent (test it with has(record.${missing[1]}))`;
    }
  }
  return `no key \`${missing[1]}\` (test it with has() or \`in\`)`;
}

function celSummary(error: unknown): string {
  if (error !== null && typeof error === 'object') {
    const summary = (error as { summary?: unknown }).summary;
    if (typeof summary === 'string') return summary;
    if (error instanceof Error) return error.message;
  }
  return String(error);
}

function problemOf(error: unknown, source: string, typing: Typing): ExpressionProblem {
  const range = (error as { range?: { start?: unknown } } | undefined)?.range;
  let offset = typeof range?.start === 'number' ? range.start : 0;
  const summary = celSummary(error);
  const missing = /^No such key: (.+)$/.exec(summary);
  if (missing) {
    const name = missing[1] as string;
    const at = source.indexOf(name, offset);
    if (at >= 0) offset = at;
    return { message: `unknown field \`${name}\`${didYouMeanSuffix(name, typing.names)}`, offset, unknownField: name };
  }
  const unknownVariable = /^Unknown variable: (.+)$/.exec(summary);
  if (unknownVariable) {
    return {
      message: `unknown variable \`${unknownVariable[1]}\`: fields are read from \`${RECORD_VARIABLE}\` (\`${RECORD_VARIABLE}.${unknownVariable[1]}\`)`,
      offset,
    };
  }
  return { message: summary, offset: Math.min(Math.max(offset, 0), source.length) };
}

interface AstLike {
  readonly op: string;
  readonly args: unknown;
}

function isAst(value: unknown): value is AstLike {
  return value !== null && typeof value === 'object' && typeof (value as { op?: unknown }).op === 'string';
}

/**
 * The record fields the expression reads (`record.x`, `record.?x`, `has(record.x)`), or undefined when it uses
 * `record` otherwise (whole, or indexed by a computed key): then every field is given.
 */
function fieldsUsed(ast: unknown): string[] | undefined {
  const fields = new Set<string>();
  let whole = false;
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) {
      for (const item of node) visit(item);
      return;
    }
    if (!isAst(node)) {
      if (node !== null && typeof node === 'object') for (const value of Object.values(node)) visit(value);
      return;
    }
    const args = node.args;
    if ((node.op === '.' || node.op === '.?') && Array.isArray(args)) {
      const [target, name] = args as [unknown, unknown];
      if (isAst(target) && target.op === 'id' && target.args === RECORD_VARIABLE && typeof name === 'string') {
        fields.add(name);
        return;
      }
    }
    if (node.op === 'id' && args === RECORD_VARIABLE) {
      whole = true;
      return;
    }
    visit(args);
  };
  visit(ast);
  return whole ? undefined : [...fields];
}
