/**
 * Loads pipeline files into validated PipelineSpecs, before any I/O of the pipeline itself. Every pass
 * collects every problem it finds (not only the first):
 *   1. YAML with node positions          4. the graph (inputs, ports, kinds, cycles, duplicates)
 *   2. `${VAR}` interpolation            5. the record schema at every port; each operator's `validate`
 *   3. the composed JSON Schema (Ajv)       with it, and the option values that name fields
 * A pipeline with an error is left out of `pipelines`; warnings do not keep a pipeline out.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type Document, isMap, isScalar, isSeq, LineCounter, type Node, parseAllDocuments, visit } from 'yaml';
import type { Diagnostic } from '../diagnostics.ts';
import type { OperatorDefinition, ResourceDefinition } from '../operator.ts';
import { loadCompiledValidator, type PipelineValidator } from '../schema/compiled.ts';
import { composePipelineSchema, defKey } from '../schema/compose.ts';
import { STAGE_SECTIONS } from '../schema/envelope.ts';
import { type DocPath, PipelineDocument, type Problem } from './document.ts';
import { checkGraph } from './graph-check.ts';
import { checkRecordSchemas } from './record-schemas.ts';
import { checkResourceUses, collectResources } from './resources.ts';
import { interpolateDocument } from './interpolate.ts';
import { translateAjvErrors } from './schema-errors.ts';
import { checkTelemetry, toSettings, toTelemetry } from './settings.ts';
import {
  asRecord,
  checkSecretOptions,
  collectStages,
  resolveTypes,
  type StageEntry,
  toStageSpec,
  validateStageOptions,
} from './stages.ts';
import { checkExclusiveWrites } from './writes.ts';
import type { PipelineSpec } from './types.ts';

export interface LoadOptions {
  /** Variables for `${VAR}`; default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Operators that may appear in the pipelines; default operators/registry.ts. */
  registry?: readonly OperatorDefinition[];
  /** Shared resource types; default those of operators/registry.ts (none with a registry of one's own). */
  resources?: readonly ResourceDefinition[];
  /** Directory relative paths resolve against; default the process cwd. */
  cwd?: string;
}

export interface LoadResult {
  /** The pipelines without errors, in file and document order. */
  pipelines: PipelineSpec[];
  diagnostics: Diagnostic[];
  /** The pipeline files read, as displayed in diagnostics. */
  files: string[];
  /** YAML files found under a directory that hold no etl pipeline (a compose file, CI configuration). */
  skipped: string[];
}

const YAML_FILE = /\.ya?ml$/i;
/** How a pipeline document starts; a file found in a directory without it is someone else's YAML. */
const PIPELINE_MARK = /^\s*apiVersion:\s*["']?etl\//m;

/** `*.yaml` / `*.yml` files below `dir`, relative to it, sorted; hidden folders and node_modules are not entered. */
async function yamlFilesUnder(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(dir, prefix), { withFileTypes: true })) {
    const path = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) {
      if (!entry.name.startsWith('.') && entry.name !== 'node_modules') out.push(...(await yamlFilesUnder(dir, path)));
    } else if (entry.isFile() && YAML_FILE.test(entry.name)) {
      out.push(path);
    }
  }
  return out.sort();
}

/**
 * Loads files, and every `*.yaml` / `*.yml` below directories (recursively, sorted). Below a directory, only
 * files and documents that are etl pipelines (`apiVersion: etl/…`) count; a file named explicitly must be one.
 */
export async function loadPipelines(paths: readonly string[], options: LoadOptions = {}): Promise<LoadResult> {
  const cwd = options.cwd ?? process.cwd();
  const diagnostics: Diagnostic[] = [];
  const files: string[] = [];
  const skipped: string[] = [];
  const found = new Set<string>();
  const directories = new Map<string, string[]>();
  const seen = new Set<string>();
  const add = (file: string, inDirectory: boolean): void => {
    const absolute = resolve(cwd, file);
    if (seen.has(absolute)) return;
    seen.add(absolute);
    files.push(file);
    if (inDirectory) found.add(file);
  };
  for (const path of paths) {
    const absolute = resolve(cwd, path);
    const info = await stat(absolute).catch(() => undefined);
    if (!info) {
      diagnostics.push(fileProblem(path, `no such file or directory: ${path}`));
    } else if (info.isDirectory()) {
      const below = await yamlFilesUnder(absolute);
      if (below.length === 0) diagnostics.push(fileProblem(path, `no *.yaml or *.yml file under ${path}`));
      const listed = below.map((file) => join(path, file));
      directories.set(path, listed);
      for (const file of listed) add(file, true);
    } else {
      add(path, false);
    }
  }
  const documents: PipelineDocument[] = [];
  const read: string[] = [];
  for (const file of files) {
    let source: string;
    try {
      source = await readFile(resolve(cwd, file), 'utf8');
    } catch (error) {
      diagnostics.push(fileProblem(file, `cannot read ${file}: ${(error as Error).message}`));
      continue;
    }
    const inDirectory = found.has(file);
    const parsed = parseFile(source, file).filter((d) => !inDirectory || d.hasErrors || isPipelineDocument(d));
    if (inDirectory && (!PIPELINE_MARK.test(source) || parsed.length === 0)) {
      skipped.push(file);
      continue;
    }
    if (parsed.length === 0) diagnostics.push(fileProblem(file, `${file} holds no pipeline document`));
    read.push(file);
    documents.push(...parsed);
  }
  for (const [path, listed] of directories) {
    if (listed.length > 0 && !listed.some((f) => read.includes(f))) {
      diagnostics.push(fileProblem(path, `no pipeline under ${path}: none of its YAML files is an etl pipeline`));
    }
  }
  const known = await operators(options.registry, options.resources, documents);
  const result = check(documents, options.env ?? process.env, known, cwd);
  return {
    pipelines: result.pipelines,
    diagnostics: [...diagnostics, ...result.diagnostics],
    files: read,
    skipped,
  };
}

/** The same passes over one file's text, without touching the file system. */
export async function loadPipelinesFromString(
  source: string,
  file: string,
  options: Omit<LoadOptions, 'cwd'> = {},
): Promise<LoadResult> {
  const documents = parseFile(source, file);
  const known = await operators(options.registry, options.resources, documents);
  const empty = documents.length === 0 ? [fileProblem(file, `${file} holds no pipeline document`)] : [];
  const result = check(documents, options.env ?? process.env, known, process.cwd());
  return { pipelines: result.pipelines, diagnostics: [...empty, ...result.diagnostics], files: [file], skipped: [] };
}

interface Operators {
  /** The definitions the documents may use: every given one, or the registered ones whose type they name. */
  readonly registry: readonly OperatorDefinition[];
  /** Every operator there is, by kind and type (for the messages about an unknown type). */
  readonly names: readonly { readonly kind: OperatorDefinition['kind']; readonly type: string }[];
  readonly resources: readonly ResourceDefinition[];
  /** The validator of the pipeline schema for documents using these operators. */
  validatorFor(used: readonly OperatorDefinition[]): PipelineValidator;
}

const custom = new WeakMap<readonly OperatorDefinition[], Promise<Operators>>();

/**
 * The given operators; or those of the registry whose type the documents name, with the validator
 * `npm run schemas` compiled. Only these definitions are loaded: a pipeline's start does not pay for every
 * operator's checks and their modules.
 */
async function operators(
  registry: readonly OperatorDefinition[] | undefined,
  resources: readonly ResourceDefinition[] = [],
  documents: readonly PipelineDocument[] = [],
): Promise<Operators> {
  if (registry) {
    let known = custom.get(registry);
    if (!known) {
      known = compilingOperators(registry, resources);
      custom.set(registry, known);
    }
    return known;
  }
  // Loaded on demand: tests with their own operators need not load the registry.
  const { catalog, resources: shared } = await import('../../operators/registry.ts');
  const named = namedTypes(documents);
  const used = await Promise.all(
    catalog.filter((entry) => named === 'any' || named.has(entry.type)).map((entry) => entry.load()),
  );
  const compiled = await loadCompiledValidator(used, shared);
  const known = compiled
    ? { registry: used, names: catalog, resources: shared, validatorFor: () => compiled }
    : await compilingOperators(used, shared);
  return { ...known, names: catalog };
}

/**
 * Every string value of a `type` key in the documents (a superset of the stage types: resources have one too),
 * or `any` when one is interpolated (`${VAR}`), whose value is known only later.
 */
function namedTypes(documents: readonly PipelineDocument[]): Set<string> | 'any' {
  const types = new Set<string>();
  let interpolated = false;
  for (const document of documents) {
    visit(document.doc, {
      Pair(_, pair) {
        if (!isScalar(pair.key) || pair.key.value !== 'type' || !isScalar(pair.value)) return;
        const value = pair.value.value;
        if (typeof value !== 'string') return;
        if (value.includes('${')) interpolated = true;
        types.add(value);
      },
    });
  }
  return interpolated ? 'any' : types;
}

/**
 * Without a precompiled validator, the pipeline schema compiled for just the operators a document uses:
 * compiling every registered one took most of the CLI's start. The answer is the same: a stage of another
 * type was reported already, and the schema's complaints about it are not shown.
 */
async function compilingOperators(
  registry: readonly OperatorDefinition[],
  resources: readonly ResourceDefinition[],
): Promise<Operators> {
  const { createAjv } = await import('../schema/ajv.ts');
  const validators = new Map<string, PipelineValidator>();
  return {
    registry,
    names: registry,
    resources,
    validatorFor(used) {
      const unique = [...new Set(used)];
      const key = unique.map(defKey).sort().join(' ');
      let validate = validators.get(key);
      if (!validate) {
        const compiled = createAjv().compile(composePipelineSchema(unique, resources));
        validate = (data) => (compiled(data) ? [] : (compiled.errors ?? []));
        validators.set(key, validate);
      }
      return validate;
    },
  };
}

/** A document that says it is an etl pipeline (its `apiVersion`), right or wrong in the rest. */
function isPipelineDocument(document: PipelineDocument): boolean {
  const contents = document.doc.contents;
  if (!isMap(contents)) return false;
  const apiVersion = contents.get('apiVersion');
  return typeof apiVersion === 'string' && apiVersion.startsWith('etl/');
}

function fileProblem(file: string, message: string): Diagnostic {
  return { file, line: 0, column: 0, path: '', code: 'ETL_CFG_NOT_FOUND', severity: 'error', message };
}

/** Pass 1: the documents of a file with their positions and YAML errors; empty documents are skipped. */
function parseFile(source: string, file: string): PipelineDocument[] {
  const lineCounter = new LineCounter();
  // Duplicate keys are reported by us: a duplicate stage id is a graph problem, not a syntax error.
  // `<<: *defaults` merge keys are common in hand-written YAML (docker-compose, CI files): honour them.
  const docs = parseAllDocuments(source, { lineCounter, uniqueKeys: false, prettyErrors: false, merge: true });
  const out: PipelineDocument[] = [];
  for (const doc of docs) {
    if (doc.contents === null && doc.errors.length === 0) continue;
    const pipeline = new PipelineDocument(file, doc as Document, lineCounter, source);
    for (const error of doc.errors) pipeline.reportAtOffset(error.pos[0], 'ETL_CFG_YAML', error.message);
    for (const warning of doc.warnings) {
      pipeline.reportAtOffset(warning.pos[0], 'ETL_CFG_YAML', warning.message, 'warning');
    }
    if (!pipeline.hasErrors) reportDuplicateKeys(pipeline, doc.contents as Node | null, []);
    out.push(pipeline);
  }
  return out;
}

function reportDuplicateKeys(pipeline: PipelineDocument, node: Node | null, path: DocPath): void {
  if (isMap(node)) {
    const stageSection = path.length === 2 && path[0] === 'spec' && STAGE_SECTIONS.some((s) => s.key === path[1]);
    const keys = new Set<string>();
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : undefined;
      if (key === undefined) continue;
      if (keys.has(key) && !stageSection && pair.key && isScalar(pair.key)) {
        pipeline.reportAtOffset(pair.key.range?.[0] ?? 0, 'ETL_CFG_YAML', `duplicate key \`${key}\``);
      }
      keys.add(key);
      reportDuplicateKeys(pipeline, pair.value as Node | null, [...path, key]);
    }
  } else if (isSeq(node)) {
    for (const [index, item] of node.items.entries())
      reportDuplicateKeys(pipeline, item as Node | null, [...path, index]);
  }
}

const MAX_ALIAS_COUNT = 1000;

interface Checked {
  readonly document: PipelineDocument;
  readonly name: string | undefined;
  readonly spec: PipelineSpec | undefined;
  readonly entries: readonly StageEntry[];
}

/**
 * Passes 2 to 5 per document, then across every document loaded together: unique names, and no two sinks
 * writing one file.
 */
function check(
  documents: readonly PipelineDocument[],
  env: NodeJS.ProcessEnv,
  known: Operators,
  cwd: string,
): { pipelines: PipelineSpec[]; diagnostics: Diagnostic[] } {
  const checked = documents.map((document) => checkDocument(document, env, known));
  checkExclusiveWrites(checked, cwd);
  const byName = new Map<string, PipelineDocument>();
  for (const { document, name } of checked) {
    if (name === undefined) continue;
    const earlier = byName.get(name);
    if (!earlier) {
      byName.set(name, document);
      continue;
    }
    const at = earlier.positionOf(['metadata', 'name']);
    document.report({
      path: ['metadata', 'name'],
      code: 'ETL_CFG_DUPLICATE_PIPELINE',
      message: `pipeline name \`${name}\` is already used at ${earlier.file}:${at.line}:${at.column}`,
      hint: 'pipeline names are unique across every file loaded together; they name the state directory',
    });
  }
  const diagnostics: Diagnostic[] = [];
  for (const { document } of checked) diagnostics.push(...sortByPosition(document.diagnostics));
  const pipelines = checked.filter((c) => c.spec && !c.document.hasErrors).map((c) => c.spec as PipelineSpec);
  return { pipelines, diagnostics };
}

function checkDocument(document: PipelineDocument, env: NodeJS.ProcessEnv, known: Operators): Checked {
  if (document.hasErrors) return { document, name: undefined, spec: undefined, entries: [] };
  const unresolved = interpolateDocument(document, env);
  let data: unknown;
  try {
    data = document.doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    // e.g. an alias bomb: refuse the document rather than expanding it.
    document.reportAtOffset(document.doc.range?.[0] ?? 0, 'ETL_CFG_YAML', (error as Error).message);
    return { document, name: undefined, spec: undefined, entries: [] };
  }
  const entries = collectStages(document, data);
  resolveTypes(document, entries, known.registry, known.names);
  // Stages with an unknown type were reported above; their options cannot be judged.
  const quiet = [...unresolved, ...entries.filter((e) => !e.schemaValid).map((e) => e.path)];
  const validate = known.validatorFor(entries.flatMap((e) => (e.definition ? [e.definition] : [])));
  for (const problem of translateAjvErrors(validate(data), data)) {
    if (quiet.some((path) => within(problem.path, path))) continue;
    const stage = entries.find((e) => within(problem.path, e.path));
    if (stage) stage.schemaValid = false;
    document.report(isEmptyValue(document.nodeAt(problem.path)) ? emptyValueProblem(problem) : problem);
  }
  for (const path of unresolved) {
    const stage = entries.find((e) => within(path, e.path));
    if (stage) stage.schemaValid = false;
  }
  validateStageOptions(document, entries);
  checkSecretOptions(document, entries);
  const resources = collectResources(document, data, known.resources);
  checkResourceUses(document, entries, resources, data);
  const root = asRecord(data);
  const spec = asRecord(root?.spec);
  checkTelemetry(document, spec);
  checkGraph(document, entries);
  const schemas = checkRecordSchemas(document, entries);

  const metadata = asRecord(root?.metadata);
  const name = typeof metadata?.name === 'string' ? metadata.name : undefined;
  if (document.hasErrors || name === undefined) return { document, name, spec: undefined, entries };
  const description = metadata?.description;
  const stages = entries.map((e) => toStageSpec(document, e, e.definition as OperatorDefinition, schemas.get(e)));
  const live = stages.some((s) => s.definition.kind === 'source' && s.definition.unbounded?.(s.options) === true);
  return {
    document,
    name,
    spec: {
      name,
      file: document.file,
      ...(typeof description === 'string' ? { description } : {}),
      settings: toSettings(spec, live),
      telemetry: toTelemetry(spec),
      stages,
      resources,
      secrets: [...new Set(document.secrets)],
    },
    entries,
  };
}

/** `key:` (or `key: null`); coercion has turned it into "", 0 or false by the time Ajv complains. */
function isEmptyValue(node: Node | undefined): boolean {
  return isScalar(node) && node.value === null;
}

function emptyValueProblem(problem: Problem): Problem {
  const key = problem.path[problem.path.length - 1];
  return {
    ...problem,
    message: `\`${String(key)}\` has no value`,
    hint: 'write a value after the colon, or remove the key if it is optional',
    target: 'key',
  };
}

function within(path: DocPath, prefix: DocPath): boolean {
  return prefix.length <= path.length && prefix.every((segment, i) => String(segment) === String(path[i]));
}

function sortByPosition(diagnostics: readonly Diagnostic[]): Diagnostic[] {
  return [...diagnostics].sort((a, b) => a.line - b.line || a.column - b.column);
}
