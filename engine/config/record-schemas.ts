/**
 * The record-schema pass: the JSON Schema of the records at every port (engine/record-schema.ts), computed in
 * topological order from what each operator declares (`outputSchemas`); then each operator's `validate` with
 * the schema reaching its stage, and the option values that name fields (`fields`) checked against it.
 * Where a schema cannot be known (a stage of unknown type or with invalid options upstream, an input naming no
 * stage or sending a kind the stage refuses, a cycle: all reported by earlier passes), it is left undefined and
 * the checks needing it are skipped.
 */
import { acceptedKinds, buildGraph, DEAD_LETTER_PORT, outputPorts } from '../graph/graph.ts';
import type { FieldUse, InputSchema, OperatorDefinition, OptionProblem } from '../operator.ts';
import type { RecordKind } from '../record.ts';
import { DEAD_LETTER_SCHEMA, OPEN_RECORD_SCHEMA, type RecordSchema, unionOf, unknownField } from '../record-schema.ts';
import type { PipelineDocument } from './document.ts';
import { provisionalSpec, STAGE_ID_RE } from './graph-check.ts';
import { list } from './suggest.ts';
import { optionsOf, type StageEntry, type StageSchemas } from './stages.ts';
import type { StageSpec } from './types.ts';

export function checkRecordSchemas(
  pipeline: PipelineDocument,
  entries: readonly StageEntry[],
): Map<StageEntry, StageSchemas> {
  const schemas = computeSchemas(pipeline, entries);
  for (const entry of entries) {
    const { definition, value } = entry;
    if (!definition || !value) continue;
    const inputSchema = schemas.get(entry)?.input;
    if (entry.schemaValid) validateOptions(pipeline, entry, definition, inputSchema);
    // Field names are checked in a stage whose other options are wrong too, so that `etl validate` says every
    // problem at once; such options may be malformed anywhere, so only what reads as a field name counts.
    if (inputSchema !== undefined) checkFieldUses(pipeline, entry, definition, inputSchema);
  }
  return schemas;
}

function computeSchemas(pipeline: PipelineDocument, entries: readonly StageEntry[]): Map<StageEntry, StageSchemas> {
  const first = new Map<string, StageEntry>();
  for (const entry of entries) if (!first.has(entry.id)) first.set(entry.id, entry);
  const specs = new Map<string, StageSpec>();
  for (const [id, entry] of first) {
    if (entry.definition && entry.value && STAGE_ID_RE.test(id)) {
      specs.set(id, provisionalSpec(pipeline, entry, entry.definition));
    }
  }
  const out = new Map<StageEntry, StageSchemas>();
  const order = buildGraph([...specs.values()]).order;
  if (order === undefined) return out; // a cycle, reported by the graph pass
  const outputs = new Map<string, Readonly<Record<string, RecordSchema | undefined>>>();
  const kinds = new Map<string, Record<string, RecordKind>>();
  for (const id of order) {
    const spec = specs.get(id) as StageSpec;
    const entry = first.get(id) as StageEntry;
    kinds.set(id, portsOf(spec));
    let input: RecordSchema | undefined;
    let inputs: InputSchema[] | undefined;
    if (spec.kind !== 'source') {
      const accepts = acceptsOf(spec);
      // Records of a kind the stage refuses (reported by the graph pass) say nothing about what it should get.
      const refused = spec.inputs.some((ref) => {
        const kind = kinds.get(ref.stage)?.[ref.port];
        return kind !== undefined && kind !== 'any' && !accepts.includes('any') && !accepts.includes(kind);
      });
      const upstream = spec.inputs.map((ref) => outputs.get(ref.stage)?.[ref.port]);
      const known = upstream.length > 0 && upstream.every((s) => s !== undefined) && !refused;
      input = known ? unionOf(upstream as RecordSchema[]) : undefined;
      if (known) {
        inputs = spec.inputs.map((ref, i) => ({
          kind: kinds.get(ref.stage)?.[ref.port] ?? 'any',
          schema: upstream[i] as RecordSchema,
        }));
      }
    }
    const ports = declaredPorts(pipeline, entry, spec, input, inputs);
    outputs.set(id, ports);
    out.set(entry, { input, outputs: ports });
  }
  return out;
}

/** The schema on each port of a stage; undefined where it cannot be known. */
function declaredPorts(
  pipeline: PipelineDocument,
  entry: StageEntry,
  spec: StageSpec,
  input: RecordSchema | undefined,
  inputs: readonly InputSchema[] | undefined,
): Record<string, RecordSchema | undefined> {
  const def = spec.definition;
  let declared: Readonly<Record<string, RecordSchema>> | undefined;
  // Options that failed the schema are not handed to the operator; records after it cannot be known.
  let known = entry.schemaValid && (def.kind === 'source' || input !== undefined);
  if (known && def.kind !== 'sink') {
    try {
      declared =
        def.kind === 'source'
          ? def.outputSchemas?.(spec.options)
          : def.outputSchemas?.(spec.options, input ?? OPEN_RECORD_SCHEMA, inputs);
    } catch (error) {
      known = false;
      pipeline.report({
        path: entry.path,
        code: 'ETL_CFG_INVALID',
        message: `the \`${spec.type}\` ${spec.kind} could not derive its record schemas from its options: ${String(error)}`,
        target: 'key',
      });
    }
  }
  const ports: Record<string, RecordSchema | undefined> = {};
  for (const port of Object.keys(portsOf(spec))) {
    if (port === DEAD_LETTER_PORT) ports[port] = DEAD_LETTER_SCHEMA;
    else ports[port] = known ? (declared?.[port] ?? OPEN_RECORD_SCHEMA) : undefined;
  }
  return ports;
}

function acceptsOf(spec: StageSpec): readonly RecordKind[] {
  try {
    return acceptedKinds(spec);
  } catch {
    return ['any'];
  }
}

/** The stage's ports; options `outputsFor` cannot read were reported by the graph pass, which then used these. */
function portsOf(spec: StageSpec): Record<string, RecordKind> {
  try {
    return outputPorts(spec);
  } catch {
    return outputPorts({ ...spec, definition: { ...spec.definition, outputsFor: undefined } as OperatorDefinition });
  }
}

function validateOptions(
  pipeline: PipelineDocument,
  entry: StageEntry,
  definition: OperatorDefinition,
  inputSchema: RecordSchema | undefined,
): void {
  if (!definition.validate || !entry.value) return;
  let problems: OptionProblem[];
  try {
    problems = definition.validate(optionsOf(entry.value), { inputSchema });
  } catch (error) {
    pipeline.report({
      path: entry.path,
      code: 'ETL_CFG_INVALID',
      message: `the \`${definition.type}\` ${definition.kind} could not check its options: ${String(error)}`,
      target: 'key',
    });
    return;
  }
  for (const problem of problems) {
    pipeline.report({
      path: [...entry.path, ...problem.path],
      code: problem.code ?? 'ETL_CFG_INVALID',
      message: problem.message,
      ...(problem.hint === undefined ? {} : { hint: problem.hint }),
      ...(problem.offset === undefined ? {} : { offset: problem.offset }),
      severity: problem.severity ?? 'error',
    });
  }
}

function checkFieldUses(
  pipeline: PipelineDocument,
  entry: StageEntry,
  definition: OperatorDefinition,
  inputSchema: RecordSchema,
): void {
  if (definition.kind === 'source' || !definition.fields || !entry.value) return;
  let uses: readonly FieldUse[];
  try {
    uses = definition.fields(optionsOf(entry.value));
  } catch (error) {
    if (entry.schemaValid) throw error;
    return; // options the schema refused, which `fields` could not read: their problems are reported already
  }
  for (const use of uses) {
    if (typeof use.field !== 'string' || use.field === '') continue;
    // In options the schema refused, a name counts only where the document writes it as such (not, say, one
    // letter of a string given where a list of names belongs).
    if (!entry.schemaValid && valueAt(entry.value, use.path) !== use.field) continue;
    const problem = unknownField(inputSchema, use.field);
    if (problem === undefined) continue;
    pipeline.report({
      path: [...entry.path, ...use.path],
      code: 'ETL_GRAPH_UNKNOWN_FIELD',
      message: problem.message,
      hint:
        problem.names.length > 0
          ? `the records reaching \`${entry.id}\` carry: ${list(problem.names)}`
          : `the records reaching \`${entry.id}\` carry no fields`,
    });
  }
}

/** The value at `path` inside `value`; undefined where the path leads nowhere. */
function valueAt(value: unknown, path: readonly (string | number)[]): unknown {
  let at = value;
  for (const key of path) {
    if (at === null || typeof at !== 'object') return undefined;
    at = (at as Record<string | number, unknown>)[key];
  }
  return at;
}
