import type { FieldUse, OptionProblem } from '../../../engine/operator.ts';
import { defineTransform } from '../../../engine/operator.ts';
import type { FieldSchema, JsonType, RecordSchema } from '../../../engine/record-schema.ts';
import { type AggregateOptions, type AggregateSpec, schema } from './schema.ts';

const WINDOW_FIELDS = ['window_start', 'window_end'] as const;

const aggregatesOf = (options: AggregateOptions) => Object.entries(options.aggregates as Record<string, AggregateSpec>);

function typesOf(field: FieldSchema | undefined): JsonType[] | undefined {
  if (field?.type === undefined) return undefined;
  return typeof field.type === 'string' ? [field.type] : [...field.type];
}

/** The field's schema, admitting null (a group whose records lack the field; a window without numbers). */
function nullable(field: FieldSchema): FieldSchema {
  const types = typesOf(field);
  if (types === undefined || types.includes('null')) return field;
  const { enum: values, ...rest } = field;
  return {
    ...rest,
    type: [...types, 'null'],
    ...(values === undefined ? {} : { enum: [...values, null] }),
  };
}

function outputSchema(options: AggregateOptions, input: RecordSchema): RecordSchema {
  const properties: Record<string, FieldSchema> = {
    window_start: { type: 'string', format: 'date-time', description: 'Start of the window (inclusive).' },
    window_end: { type: 'string', format: 'date-time', description: 'End of the window (exclusive).' },
  };
  for (const name of options.group_by) properties[name] = nullable(input.properties?.[name] ?? {});
  for (const [name, spec] of aggregatesOf(options)) {
    const source = spec.field === undefined ? undefined : input.properties?.[spec.field];
    const integral = typesOf(source)?.every((t) => t === 'integer' || t === 'null') === true;
    const numeric: JsonType = integral ? 'integer' : 'number';
    if (spec.fn === 'count') properties[name] = { type: 'integer', minimum: 0 };
    else if (spec.fn === 'distinct') {
      properties[name] = {
        type: 'integer',
        minimum: 0,
        description: `Distinct values of \`${spec.field}\`: exact up to 256, then within 0.8% (standard error).`,
      };
    } else if (spec.fn === 'sum') properties[name] = { type: numeric };
    else if (spec.fn === 'min' || spec.fn === 'max') properties[name] = { type: [numeric, 'null'] };
    else properties[name] = { type: ['number', 'null'] };
  }
  if (options.top !== undefined) {
    properties.rank = { type: 'integer', minimum: 1, maximum: options.top.n, description: 'Rank in the top N.' };
  }
  return { type: 'object', additionalProperties: false, required: Object.keys(properties), properties };
}

export default defineTransform<typeof schema, AggregateOptions>({
  type: 'aggregate',
  stability: 'beta',
  summary: 'Windowed rollups on event time: counts, distinct counts, sums, min, max, averages and quantiles per group',
  schema,
  accepts: ['any'],
  outputs: { default: 'any' },
  outputSchemas: (options, input) => ({ default: outputSchema(options, input) }),
  examples: [
    {
      window_seconds: 60,
      allowed_lateness_seconds: 300,
      time_field: 'timestamp',
      group_by: ['path'],
      aggregates: {
        requests: { fn: 'count' },
        status_5xx: { fn: 'count', field: 'status', between: [500, 599] },
        bytes_sum: { fn: 'sum', field: 'bytes' },
        latency_p95_ms: { fn: 'p95', field: 'request_time_ms' },
      },
    },
    {
      window_seconds: 3600,
      allowed_lateness_seconds: 0,
      time_field: 'timestamp',
      group_by: ['geo_country'],
      aggregates: { requests: { fn: 'count' } },
    },
    {
      window_seconds: 3600,
      allowed_lateness_seconds: 600,
      time_field: 'timestamp',
      group_by: ['path'],
      aggregates: { requests: { fn: 'count' }, clients: { fn: 'distinct', field: 'client_ip' } },
    },
    {
      window_seconds: 60,
      allowed_lateness_seconds: 60,
      time_field: 'timestamp',
      group_by: ['path'],
      top: { n: 10, by: 'requests' },
      aggregates: { requests: { fn: 'count' }, bytes_sum: { fn: 'sum', field: 'bytes' } },
    },
    {
      window_seconds: 300,
      slide_seconds: 60,
      allowed_lateness_seconds: 60,
      time_field: 'timestamp',
      group_by: [],
      aggregates: {
        requests: { fn: 'count' },
        latency_avg_ms: { fn: 'avg', field: 'request_time_ms' },
        latency_min_ms: { fn: 'min', field: 'request_time_ms' },
        latency_max_ms: { fn: 'max', field: 'request_time_ms' },
        latency_p50_ms: { fn: 'p50', field: 'request_time_ms' },
        latency_p99_ms: { fn: 'p99', field: 'request_time_ms' },
      },
    },
  ],
  // A window is emitted again when a late record changes it: a rollup table must be keyed on these.
  rowKey: (options) => (options.top === undefined ? ['window_start', ...options.group_by] : ['window_start', 'rank']),
  fields(options): FieldUse[] {
    const uses: FieldUse[] = [{ path: ['time_field'], field: options.time_field }];
    options.group_by.forEach((field, i) => {
      uses.push({ path: ['group_by', i], field });
    });
    for (const [name, spec] of aggregatesOf(options)) {
      if (spec.field !== undefined) uses.push({ path: ['aggregates', name, 'field'], field: spec.field });
    }
    return uses;
  },
  validate(options, { inputSchema }) {
    const problems: OptionProblem[] = [];
    const slide = options.slide_seconds;
    if (slide !== undefined && (slide > options.window_seconds || options.window_seconds % slide !== 0)) {
      problems.push({
        path: ['slide_seconds'],
        message: `slide_seconds (${slide}) must divide window_seconds (${options.window_seconds})`,
        hint: 'e.g. window_seconds: 300 with slide_seconds: 60',
      });
    }
    const taken = new Set<string>(options.top === undefined ? WINDOW_FIELDS : [...WINDOW_FIELDS, 'rank']);
    if (options.top !== undefined && !Object.hasOwn(options.aggregates, options.top.by)) {
      problems.push({
        path: ['top', 'by'],
        message: `\`${options.top.by}\` is not one of the aggregates (${Object.keys(options.aggregates).join(', ')})`,
      });
    }
    options.group_by.forEach((field, i) => {
      if (taken.has(field)) {
        problems.push({ path: ['group_by', i], message: `\`${field}\` is a field the aggregate emits itself` });
      }
      taken.add(field);
    });
    for (const [name, spec] of aggregatesOf(options)) {
      if (taken.has(name)) {
        problems.push({
          path: ['aggregates', name],
          message: `\`${name}\` is also ${options.group_by.includes(name) ? 'a group_by field' : 'a field the aggregate emits itself'}`,
          hint: 'name the aggregate otherwise, e.g. `requests`, `bytes_sum`, `latency_p95_ms`',
        });
      }
      if (spec.fn !== 'count' && spec.field === undefined) {
        problems.push({
          path: ['aggregates', name],
          message: `\`${spec.fn}\` needs a \`field\``,
          hint: `e.g. ${name}: { fn: ${spec.fn}, field: duration }`,
        });
      }
      if (spec.between !== undefined && (spec.fn !== 'count' || spec.field === undefined)) {
        problems.push({ path: ['aggregates', name, 'between'], message: '`between` applies to `count` of a `field`' });
      }
      const [low, high] = spec.between ?? [0, 0];
      if ((low as number) > (high as number)) {
        problems.push({ path: ['aggregates', name, 'between'], message: `empty range [${low}, ${high}]` });
      }
      const numericUse = (spec.fn !== 'count' && spec.fn !== 'distinct') || spec.between !== undefined;
      const types = typesOf(spec.field === undefined ? undefined : inputSchema?.properties?.[spec.field]);
      if (numericUse && types !== undefined && !types.some((t) => t === 'number' || t === 'integer')) {
        problems.push({
          path: ['aggregates', name, 'field'],
          message: `\`${spec.field}\` is not numeric (${types.join(' | ')}): \`${spec.fn}\` needs numbers`,
        });
      }
    }
    return problems;
  },
  async create(options, ctx) {
    const { AggregateTransform } = await import('./aggregate.ts');
    return new AggregateTransform(options, ctx);
  },
});
