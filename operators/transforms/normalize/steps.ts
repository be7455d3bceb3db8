/**
 * Steps made into operations on a record, compiled once against the schema reaching each step: that schema is
 * the input's as the steps before left it, so a field renamed in step 1 is known by its new name in step 2, and
 * a misspelt one is refused where it is written. The same walk gives the schema the stage emits.
 *
 * Per record, an operation changes the stage's own copy of the record in place (never the record it was given)
 * and returns why it failed, or undefined. Operations never throw.
 */
import { unescape as unescapeQueryString } from 'node:querystring';
import {
  type Condition,
  compileCondition,
  compileExpression,
  type Expression,
  type ExpressionProblem,
  expressionOptionProblem,
} from '../../../engine/expression.ts';
import type { OptionProblem } from '../../../engine/operator.ts';
import type { EtlRecord } from '../../../engine/record.ts';
import {
  type FieldSchema,
  isClosed,
  type JsonType,
  type RecordSchema,
  unionOf,
  unknownField,
} from '../../../engine/record-schema.ts';
import type { OperationName, Step } from './schema.ts';

/**
 * The stage's working copy of a record. A field a step removes is set to undefined rather than deleted (`delete`
 * turns an object into a slow dictionary, for the steps after and for the sinks): the stage copies the record
 * without such fields once its steps are done (`remover`), or leaves them out of the copy from the start when
 * nothing else reads them (`Walk.early`).
 */
export type Work = Record<string, unknown>;

export interface Operation {
  /** `cast bytes`, for reasons and metrics. */
  readonly label: string;
  /** Whether it may leave fields undefined, to be removed once the steps are done. */
  readonly removes: boolean;
  /** `original` is the record as it reached the stage (never changed). */
  apply(work: Work, original: EtlRecord): string | undefined;
}

export interface CompiledStep {
  readonly when: Condition | undefined;
  readonly operation: Operation;
}

/** What walking the steps found: operations (when every step compiled), problems, and the schema at the end. */
export interface Walk {
  readonly steps: CompiledStep[];
  /**
   * Fields to leave out of the stage's copy of each record from the start: removed by one step without `when`,
   * read by nothing else, written by no step before (a rename reads them from the original record).
   */
  readonly early: readonly string[];
  /** The other fields steps may remove (renamed or dropped ones), left undefined and cut out at the end. */
  readonly removable: readonly string[];
  readonly problems: OptionProblem[];
  readonly output: RecordSchema;
}

/** The operation a step holds (its one key besides `when`). */
export function operationOf(step: Step): OperationName {
  for (const key of Object.keys(step)) if (key !== 'when') return key as OperationName;
  throw new Error('a step holds no operation');
}

/** Whether a field schema admits null (an unknown field may hold anything). */
function admitsNull(field: FieldSchema | undefined): boolean {
  if (field === undefined || field.type === undefined) return true;
  return field.type === 'null' || (Array.isArray(field.type) && field.type.includes('null'));
}

function typesOf(field: FieldSchema | undefined): JsonType[] | undefined {
  if (field?.type === undefined || field.anyOf !== undefined || field.oneOf !== undefined) return undefined;
  return typeof field.type === 'string' ? [field.type] : [...field.type];
}

/** A record schema with these properties and required fields; closed when `closed`; no `$id` (it is another). */
function reshape(closed: boolean, properties: Record<string, FieldSchema>, required: Iterable<string>): RecordSchema {
  const names = [...new Set(required)].filter((name) => name in properties);
  return {
    type: 'object',
    properties,
    ...(names.length > 0 ? { required: names } : {}),
    ...(closed ? { additionalProperties: false } : {}),
  };
}

/** CEL types a computed field may have, as the field schema they give. */
function computedField(celType: string, nullable: boolean): { field: FieldSchema; kind: ValueKind } | undefined {
  const orNull = (type: JsonType): JsonType | JsonType[] => (nullable ? [type, 'null'] : type);
  if (celType === 'int' || celType === 'uint') return { field: { type: orNull('integer') }, kind: 'integer' };
  if (celType === 'double') return { field: { type: orNull('number') }, kind: 'number' };
  if (celType === 'string') return { field: { type: orNull('string') }, kind: 'string' };
  if (celType === 'bool') return { field: { type: orNull('boolean') }, kind: 'boolean' };
  if (celType === 'google.protobuf.Timestamp')
    return { field: { type: orNull('string'), format: 'date-time' }, kind: 'timestamp' };
  if (celType.startsWith('list<')) return { field: { type: orNull('array') }, kind: 'json' };
  if (celType.startsWith('map<')) return { field: { type: orNull('object') }, kind: 'json' };
  if (celType === 'dyn') return { field: {}, kind: 'json' };
  return undefined;
}

type ValueKind = 'integer' | 'number' | 'string' | 'boolean' | 'timestamp' | 'json';

/** Names that would set an object's prototype rather than a field. */
const FORBIDDEN = '__proto__';

/**
 * Compiles the steps against `input`, the schema of the records reaching the stage. Problems carry paths relative
 * to the stage's options; when there are any, `steps` is incomplete and must not run.
 */
export function walkSteps(steps: readonly Step[], input: RecordSchema, earlyRemoval = true): Walk {
  const problems: OptionProblem[] = [];
  const compiled: CompiledStep[] = [];
  /** What became of names earlier steps took away: `renamed to \`ip\` by steps[0]`. */
  const gone = new Map<string, string>();
  const removable = new Set<string>();
  // For early removal: names read other than by the step removing them, names written so far, removals.
  const readNames = new Set<string>();
  const written = new Set<string>();
  const removals = new Map<string, { count: number; late: boolean }>();
  /** Set by an expression over an open schema: which fields it reads is known only when it runs. */
  let opaque = false;
  const renames: Rename[] = [];
  const drops: Drop[] = [];
  let schema = input;

  steps.forEach((step, i) => {
    const op = operationOf(step);
    const at = ['steps', i, op];
    const closed = isClosed(schema);
    const properties: Record<string, FieldSchema> = { ...schema.properties };
    const required = new Set(schema.required ?? []);

    /** An expression's problem; naming a field an earlier step took away, it says what became of it. */
    const expressionProblem = (path: (string | number)[], problem: ExpressionProblem): OptionProblem => {
      const fate = problem.unknownField === undefined ? undefined : gone.get(problem.unknownField);
      const message =
        fate === undefined ? problem.message : `unknown field \`${problem.unknownField}\`: it was ${fate}`;
      return expressionOptionProblem(path, { ...problem, message });
    };
    const read = (path: (string | number)[], name: string, byRemoval = false): void => {
      if (!byRemoval) readNames.add(name);
      if (name === FORBIDDEN) {
        problems.push({ path, message: `\`${FORBIDDEN}\` cannot be a field name here` });
        return;
      }
      const unknown = unknownField(schema, name);
      if (unknown === undefined) return;
      const fate = gone.get(name);
      problems.push({
        path,
        code: 'ETL_GRAPH_UNKNOWN_FIELD',
        message: fate === undefined ? unknown.message : `unknown field \`${name}\`: it was ${fate}`,
        hint:
          unknown.names.length > 0
            ? `the records reaching steps[${i}] carry: ${unknown.names.join(', ')}`
            : `the records reaching steps[${i}] carry no fields`,
      });
    };
    const removal = (name: string): void => {
      const known = removals.get(name) ?? { count: 0, late: false };
      known.count++;
      if (step.when !== undefined || written.has(name)) known.late = true;
      removals.set(name, known);
    };
    const reads = (fields: readonly string[]): void => {
      if (!isClosed(schema)) opaque = true;
      for (const name of fields) readNames.add(name);
    };
    const write = (path: (string | number)[], name: string): void => {
      if (name === FORBIDDEN) problems.push({ path, message: `\`${FORBIDDEN}\` cannot be a field name` });
      gone.delete(name);
      written.add(name);
    };

    let when: Condition | undefined;
    if (step.when !== undefined) {
      const made = compileCondition(step.when, schema);
      if ('problem' in made) problems.push(expressionProblem(['steps', i, 'when'], made.problem));
      else {
        when = made.condition;
        reads(when.fields);
      }
    }

    /** A warning when `field` is declared with no string type: a step on strings leaves its every value as it is. */
    const stringsOnly = (path: (string | number)[], name: string): void => {
      const types = typesOf(schema.properties?.[name])?.filter((t) => t !== 'null');
      if (types === undefined || types.length === 0 || types.includes('string')) return;
      problems.push({
        path,
        message: `\`${name}\` is ${types.join(' or ')} here: the \`${op}\` step changes only strings`,
        severity: 'warning',
      });
    };
    let operation: Operation | undefined;
    if ('rename' in step) {
      const { from, to } = step.rename;
      read([...at, 'from'], from, true);
      if (from !== to) {
        removal(from);
        gone.set(from, `renamed to \`${to}\` by steps[${i}]`);
        removable.add(from);
        // Left undefined when `from` is absent and the record has a `to` already.
        removable.add(to);
      }
      write([...at, 'to'], to);
      const moved = properties[from] ?? {};
      const wasRequired = required.has(from);
      delete properties[from];
      required.delete(from);
      required.delete(to);
      properties[to] = moved;
      if (wasRequired) required.add(to);
      const rename = new Rename(from, to);
      renames.push(rename);
      operation = rename;
    } else if ('cast' in step) {
      const { field, to, on_error: onError = 'dead_letter' } = step.cast;
      read([...at, 'field'], field);
      write([...at, 'field'], field);
      const nullable = admitsNull(properties[field]) || onError === 'null';
      properties[field] = { type: nullable ? [to, 'null'] : to };
      operation = new Cast(field, to, onError === 'null');
    } else if ('default' in step) {
      const { field, value } = step.default;
      read([...at, 'field'], field);
      write([...at, 'field'], field);
      const valueType: JsonType =
        typeof value === 'number'
          ? Number.isInteger(value)
            ? 'integer'
            : 'number'
          : typeof value === 'string'
            ? 'string'
            : 'boolean';
      // An undeclared field of an open schema may hold anything already.
      properties[field] = closed || field in properties ? withDefault(properties[field], valueType) : {};
      required.add(field);
      operation = new Default(field, value);
    } else if ('drop' in step) {
      step.drop.fields.forEach((name, j) => {
        read([...at, 'fields', j], name, true);
        removal(name);
        gone.set(name, `dropped by steps[${i}]`);
        removable.add(name);
        delete properties[name];
        required.delete(name);
      });
      const drop = new Drop(step.drop.fields);
      drops.push(drop);
      operation = drop;
    } else if ('compute' in step) {
      const { field, expression, on_error: onError = 'dead_letter' } = step.compute;
      write([...at, 'field'], field);
      const made = compileExpression(expression, schema);
      if ('problem' in made) {
        problems.push(expressionProblem([...at, 'expression'], made.problem));
        properties[field] = {};
      } else {
        const typed = computedField(made.expression.type, onError === 'null');
        if (typed === undefined) {
          problems.push({
            path: [...at, 'expression'],
            message: `the expression gives a ${made.expression.type}, which no field can hold`,
            hint: 'a computed field holds an int, uint, double, string, bool, timestamp, list or map',
          });
          properties[field] = {};
        } else {
          reads(made.expression.fields);
          properties[field] = typed.field;
          operation = new Compute(field, made.expression, typed.kind, onError === 'null');
        }
      }
      required.add(field);
    } else if ('lowercase_host' in step) {
      const { field } = step.lowercase_host;
      read([...at, 'field'], field);
      stringsOnly([...at, 'field'], field);
      operation = new LowercaseHost(field);
    } else if ('url' in step) {
      const { field, decode = true, query_field: queryField } = step.url;
      read([...at, 'field'], field);
      stringsOnly([...at, 'field'], field);
      write([...at, 'field'], field);
      const before = properties[field];
      // A decoded path no longer has the format or pattern the raw one had: only its types stay.
      const types = typesOf(before);
      properties[field] = types === undefined ? {} : { type: types.length === 1 ? (types[0] as JsonType) : types };
      if (queryField !== undefined) {
        write([...at, 'query_field'], queryField);
        properties[queryField] = queryMapField(field);
        required.add(queryField);
      }
      operation = new Url(field, decode, queryField);
    } else if ('query' in step) {
      const { field, to } = step.query;
      read([...at, 'field'], field);
      stringsOnly([...at, 'field'], field);
      write([...at, 'to'], to);
      properties[to] = queryMapField(field);
      required.add(to);
      operation = new Query(field, to);
    } else if ('endpoint' in step) {
      const { field, to, builtin, patterns = [] } = step.endpoint;
      read([...at, 'field'], field);
      stringsOnly([...at, 'field'], field);
      write([...at, 'to'], to);
      const own: SegmentPattern[] = [];
      patterns.forEach((p, j) => {
        try {
          own.push({ regex: new RegExp(`^(?:${p.regex})$`), placeholder: p.placeholder });
        } catch (error) {
          problems.push({
            path: [...at, 'patterns', j, 'regex'],
            message: `not a valid regular expression: ${(error as Error).message}`,
          });
        }
      });
      const chosen = builtin ?? BUILTIN_NAMES;
      properties[to] = { type: ['string', 'null'], description: `The endpoint template of \`${field}\`.` };
      required.add(to);
      operation = new Endpoint(field, to, [...own, ...BUILTINS.filter((b) => chosen.includes(b.name))]);
    }

    const after = reshape(closed, properties, required);
    schema = when === undefined && step.when === undefined ? after : unionOf([schema, after]);
    if (operation !== undefined) compiled.push({ when, operation });
  });

  const early =
    opaque || !earlyRemoval
      ? []
      : [...removals].filter(([name, r]) => r.count === 1 && !r.late && !readNames.has(name)).map(([name]) => name);
  for (const rename of renames) rename.removedEarly(early);
  for (const drop of drops) drop.removedEarly(early);
  const late = [...removable].filter((name) => !early.includes(name));
  return { steps: compiled, early, removable: late, problems, output: schema };
}

function queryMapField(field: string): FieldSchema {
  return {
    type: ['object', 'null'],
    additionalProperties: { type: 'string' },
    description: `The query of \`${field}\`: parameter → value.`,
  };
}

/** A field given a default: the types it had but null, and the default's type. */
function withDefault(before: FieldSchema | undefined, valueType: JsonType): FieldSchema {
  if (before === undefined) return { type: valueType };
  const types = typesOf(before);
  if (types === undefined) return Object.keys(before).length === 0 ? {} : { anyOf: [before, { type: valueType }] };
  const others = Object.keys(before).filter((k) => k !== 'type' && k !== 'description');
  const kept = [...new Set([...types.filter((t) => t !== 'null'), valueType])];
  if (others.length === 0) return { type: kept.length === 1 ? (kept[0] as JsonType) : kept };
  return { anyOf: [before, { type: valueType }] };
}

// ---------------------------------------------------------------------------------------------- operations

/** Copies a record without some fields. */
type Remover = (work: Work) => Work;

/** How many names one mask covers. */
const MASK_BITS = 30;

/**
 * A function (made once per stage) giving `work` without the fields steps removed (left undefined), of `names`, the
 * fields the steps may remove. Object rest copies a record in one go, excluding every such field at once, and keeps
 * it a fast object (its origin symbol too): `delete` makes it a slow dictionary for every stage after, and copying
 * field by field was three times slower (bench/normalize.ts). One copying function per set of fields removed, made
 * the first time a record has that set.
 */
export function remover(names: readonly string[]): Remover {
  if (names.length > MASK_BITS) {
    const first = remover(names.slice(0, MASK_BITS));
    const then = remover(names.slice(MASK_BITS));
    return (work) => then(first(work));
  }
  const bySet = new Map<number, Remover>();
  return (work) => {
    let mask = 0;
    for (let i = 0; i < names.length; i++) {
      const name = names[i] as string;
      if (work[name] === undefined && Object.hasOwn(work, name)) mask |= 1 << i;
    }
    if (mask === 0) return work;
    let remove = bySet.get(mask);
    if (remove === undefined) {
      remove = excluding(names.filter((_, i) => (mask & (1 << i)) !== 0));
      bySet.set(mask, remove);
    }
    return remove(work);
  };
}

/** Copies a record without `names` (object rest), made once per set of names. */
export function excluding(names: readonly string[]): Remover {
  const [a = '', b = '', c = '', d = ''] = names;
  switch (names.length) {
    case 0:
      return (work) => work;
    case 1:
      return ({ [a]: _a, ...rest }) => rest;
    case 2:
      return ({ [a]: _a, [b]: _b, ...rest }) => rest;
    case 3:
      return ({ [a]: _a, [b]: _b, [c]: _c, ...rest }) => rest;
    case 4:
      return ({ [a]: _a, [b]: _b, [c]: _c, [d]: _d, ...rest }) => rest;
    default: {
      const first = excluding(names.slice(0, 4));
      const then = excluding(names.slice(4));
      return (work) => then(first(work));
    }
  }
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

class Rename implements Operation {
  readonly label: string;
  readonly removes = true;
  private readonly from: string;
  private readonly to: string;
  /** `from` is left out of the stage's copy from the start: its value is read from the original record. */
  private fromOriginal = false;
  constructor(from: string, to: string) {
    this.from = from;
    this.to = to;
    this.label = `rename ${from}`;
  }
  /** Told once, before any record, which fields the stage leaves out from the start. */
  removedEarly(names: readonly string[]): void {
    this.fromOriginal = names.includes(this.from);
  }
  apply(work: Work, original: EtlRecord): undefined {
    if (this.from === this.to) return;
    const value = this.fromOriginal ? original[this.from] : work[this.from];
    if (value !== undefined) {
      work[this.to] = value;
      if (!this.fromOriginal) work[this.from] = undefined;
    } else if (Object.hasOwn(work, this.to)) {
      // `to` becomes what `from` was: absent.
      work[this.to] = undefined;
    }
  }
}

const INTEGER = /^[+-]?\d+$/;
const TRUE_WORDS = new Set(['true', 'yes', '1']);
const FALSE_WORDS = new Set(['false', 'no', '0']);

class Cast implements Operation {
  readonly label: string;
  readonly removes = false;
  private readonly field: string;
  private readonly to: 'integer' | 'number' | 'string' | 'boolean';
  private readonly toNull: boolean;
  constructor(field: string, to: 'integer' | 'number' | 'string' | 'boolean', toNull: boolean) {
    this.field = field;
    this.to = to;
    this.toNull = toNull;
    this.label = `cast ${field}`;
  }
  apply(work: Work): string | undefined {
    const value = work[this.field];
    if (value === null || value === undefined) return;
    const cast = this.convert(value);
    if (cast !== undefined) {
      work[this.field] = cast;
      return;
    }
    if (this.toNull) {
      work[this.field] = null;
      return;
    }
    return `${shown(value)} is not ${this.to === 'integer' ? 'an' : 'a'} ${this.to}`;
  }
  private convert(value: unknown): unknown {
    switch (this.to) {
      case 'integer':
        if (typeof value === 'number') return Number.isSafeInteger(value) ? value : undefined;
        if (typeof value === 'string' && INTEGER.test(value.trim())) {
          const n = Number(value);
          return Number.isSafeInteger(n) ? n : undefined;
        }
        return undefined;
      case 'number':
        if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
        if (typeof value === 'string' && value.trim() !== '') {
          const n = Number(value);
          return Number.isFinite(n) ? n : undefined;
        }
        return undefined;
      case 'string':
        if (typeof value === 'string') return value;
        if (typeof value === 'number' || typeof value === 'boolean') return String(value);
        try {
          return JSON.stringify(value);
        } catch {
          return undefined;
        }
      case 'boolean':
        if (typeof value === 'boolean') return value;
        if (value === 1 || value === 0) return value === 1;
        if (typeof value === 'string') {
          const word = value.trim().toLowerCase();
          if (TRUE_WORDS.has(word)) return true;
          if (FALSE_WORDS.has(word)) return false;
        }
        return undefined;
    }
  }
}

class Default implements Operation {
  readonly label: string;
  readonly removes = false;
  private readonly field: string;
  private readonly value: string | number | boolean;
  constructor(field: string, value: string | number | boolean) {
    this.field = field;
    this.value = value;
    this.label = `default ${field}`;
  }
  apply(work: Work): undefined {
    const value = work[this.field];
    if (value === null || value === undefined) work[this.field] = this.value;
  }
}

class Drop implements Operation {
  readonly label: string;
  removes = true;
  private fields: readonly string[];
  constructor(fields: readonly string[]) {
    this.fields = fields;
    this.label = `drop ${fields.join(', ')}`;
  }
  /** Told once, before any record, which fields the stage leaves out from the start: those need no work here. */
  removedEarly(names: readonly string[]): void {
    this.fields = this.fields.filter((name) => !names.includes(name));
    this.removes = this.fields.length > 0;
  }
  apply(work: Work): undefined {
    for (let i = 0; i < this.fields.length; i++) work[this.fields[i] as string] = undefined;
  }
}

class Compute implements Operation {
  readonly label: string;
  readonly removes = false;
  private readonly field: string;
  private readonly expression: Expression;
  private readonly kind: ValueKind;
  private readonly toNull: boolean;
  constructor(field: string, expression: Expression, kind: ValueKind, toNull: boolean) {
    this.field = field;
    this.expression = expression;
    this.kind = kind;
    this.toNull = toNull;
    this.label = `compute ${field}`;
  }
  apply(work: Work): string | undefined {
    const result = this.expression.evaluate(work as EtlRecord);
    let why: string;
    if (result.ok) {
      const value = jsonValue(result.value, this.kind);
      if (!(value instanceof Unstorable)) {
        work[this.field] = value;
        return;
      }
      why = value.why;
    } else why = result.error;
    if (this.toNull) {
      work[this.field] = null;
      return;
    }
    return why;
  }
}

/** A value CEL gave that a record cannot hold, and why. */
class Unstorable {
  readonly why: string;
  constructor(why: string) {
    this.why = why;
  }
}

/** A CEL value as a record holds it: integers as numbers, timestamps as ISO strings, maps as objects. */
function jsonValue(value: unknown, kind: ValueKind): unknown {
  switch (kind) {
    case 'integer':
      return integerValue(value);
    case 'number':
      return typeof value === 'number' && Number.isFinite(value) ? value : new Unstorable(`gave ${String(value)}`);
    case 'string':
    case 'boolean':
      return value;
    case 'timestamp':
      return value instanceof Date && !Number.isNaN(value.getTime())
        ? value.toISOString()
        : new Unstorable('gave no valid timestamp');
    case 'json':
      return deepValue(value, 0);
  }
}

function integerValue(value: unknown): unknown {
  if (typeof value === 'bigint') {
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(value)
      : new Unstorable(`gave ${value}, beyond the integers a record holds exactly (±2^53)`);
  }
  // A uint (`1u`) is an object holding a number or a bigint.
  if (value !== null && typeof value === 'object' && 'value' in value) return integerValue(value.value);
  if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
  return new Unstorable(`gave ${String(value)}, not an integer`);
}

/** Lists and maps (and `dyn` values) made of what JSON holds; nested deeper than 32 levels is refused. */
function deepValue(value: unknown, depth: number): unknown {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : new Unstorable(`gave ${value}`);
  if (typeof value === 'bigint') return integerValue(value);
  if (depth > 32) return new Unstorable('gave a value nested too deep');
  if (value instanceof Date) return jsonValue(value, 'timestamp');
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    for (const item of value) {
      const v = deepValue(item, depth + 1);
      if (v instanceof Unstorable) return v;
      out.push(v);
    }
    return out;
  }
  if (value instanceof Map) return deepValue(Object.fromEntries(value), depth);
  if (typeof value === 'object' && (value.constructor === Object || value.constructor === undefined)) {
    const out: Record<string, unknown> = Object.create(null);
    for (const [k, item] of Object.entries(value)) {
      const v = deepValue(item, depth + 1);
      if (v instanceof Unstorable) return v;
      out[k] = v;
    }
    return out;
  }
  if (typeof value === 'object' && 'value' in value) return integerValue(value);
  return new Unstorable(`gave a ${value?.constructor?.name ?? typeof value}, which a record cannot hold`);
}

class LowercaseHost implements Operation {
  readonly label: string;
  readonly removes = false;
  private readonly field: string;
  constructor(field: string) {
    this.field = field;
    this.label = `lowercase_host ${field}`;
  }
  apply(work: Work): undefined {
    const value = work[this.field];
    if (typeof value !== 'string') return;
    const lower = value.toLowerCase();
    work[this.field] = lower.endsWith('.') ? lower.slice(0, -1) : lower;
  }
}

/**
 * Percent-decoding that never throws: node:querystring's `unescape` decodes what is well-formed, leaves a `%`
 * not followed by two hex digits as it is, and decodes bytes that are not UTF-8 to U+FFFD (unlike
 * decodeURIComponent, which throws on both).
 */
function decode(text: string): string {
  return text.indexOf('%') < 0 ? text : unescapeQueryString(text);
}

class Url implements Operation {
  readonly label: string;
  readonly removes = false;
  private readonly field: string;
  private readonly decode: boolean;
  private readonly queryField: string | undefined;
  constructor(field: string, decode: boolean, queryField: string | undefined) {
    this.field = field;
    this.decode = decode;
    this.queryField = queryField;
    this.label = `url ${field}`;
  }
  apply(work: Work): undefined {
    const value = work[this.field];
    if (typeof value !== 'string') {
      if (this.queryField !== undefined) work[this.queryField] = null;
      return;
    }
    const hash = value.indexOf('#');
    const target = hash < 0 ? value : value.slice(0, hash);
    const mark = target.indexOf('?');
    const path = mark < 0 ? target : target.slice(0, mark);
    work[this.field] = this.decode ? decode(path) : path;
    if (this.queryField === undefined) return;
    work[this.queryField] = mark >= 0 ? splitQuery(target.slice(mark + 1)) : Object.create(null);
  }
}

/** A query string as a map (without a prototype: a parameter named `__proto__` is a key like any other). */
function splitQuery(query: string): Record<string, string> {
  const map: Record<string, string> = Object.create(null);
  // URLSearchParams decodes `+` and percent-encoding as forms do, and never throws on malformed input.
  for (const [key, value] of new URLSearchParams(query)) map[key] = value;
  return map;
}

class Query implements Operation {
  readonly label: string;
  readonly removes = false;
  private readonly field: string;
  private readonly to: string;
  constructor(field: string, to: string) {
    this.field = field;
    this.to = to;
    this.label = `query ${field}`;
  }
  apply(work: Work): undefined {
    const value = work[this.field];
    work[this.to] = typeof value === 'string' ? splitQuery(value) : null;
  }
}

interface SegmentPattern {
  readonly regex: RegExp;
  readonly placeholder: string;
}

type BuiltinName = 'integer' | 'uuid' | 'hash' | 'date';
const BUILTIN_NAMES: readonly BuiltinName[] = ['integer', 'uuid', 'hash', 'date'];
const BUILTINS: readonly (SegmentPattern & { name: BuiltinName })[] = [
  {
    name: 'uuid',
    regex: /^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$/,
    placeholder: ':id',
  },
  { name: 'integer', regex: /^\d+$/, placeholder: ':id' },
  { name: 'hash', regex: /^[0-9A-Fa-f]{16,}$/, placeholder: ':id' },
  { name: 'date', regex: /^\d{4}-\d{2}-\d{2}$/, placeholder: ':date' },
];

class Endpoint implements Operation {
  readonly label: string;
  readonly removes = false;
  private readonly field: string;
  private readonly to: string;
  private readonly patterns: readonly SegmentPattern[];
  constructor(field: string, to: string, patterns: readonly SegmentPattern[]) {
    this.field = field;
    this.to = to;
    this.patterns = patterns;
    this.label = `endpoint ${field}`;
  }
  apply(work: Work): undefined {
    const value = work[this.field];
    if (typeof value !== 'string') {
      work[this.to] = null;
      return;
    }
    let end = value.length;
    const mark = value.indexOf('?');
    if (mark >= 0) end = mark;
    const hash = value.indexOf('#');
    if (hash >= 0 && hash < end) end = hash;
    const segments = value.slice(0, end).split('/');
    const patterns = this.patterns;
    for (let s = 0; s < segments.length; s++) {
      const segment = segments[s] as string;
      if (segment === '') continue;
      for (let p = 0; p < patterns.length; p++) {
        const pattern = patterns[p] as SegmentPattern;
        if (pattern.regex.test(segment)) {
          segments[s] = pattern.placeholder;
          break;
        }
      }
    }
    work[this.to] = segments.join('/');
  }
}
