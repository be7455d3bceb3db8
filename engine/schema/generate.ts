/**
 * Writes the published schemas (`npm run schemas`): schemas/pipeline.schema.json, one file per operator
 * under schemas/operators/<sources|transforms|sinks>/<type>.json, and schemas/record.schema.json from the
 * parse operator's record schema. A test compares these files with `renderSchemas` and fails when stale.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { OperatorDefinition } from '../operator.ts';
import { composePipelineSchema, operatorStageSchema } from './compose.ts';
import { sectionOf } from './envelope.ts';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const SCHEMAS_DIR = join(ROOT, 'schemas');
const RECORD_SCHEMA_MODULE = join(ROOT, 'operators/transforms/parse/record.schema.ts');

/** Generated files by path relative to schemas/, with their exact contents. */
export function renderSchemas(registry: readonly OperatorDefinition[], recordSchema?: unknown): Map<string, string> {
  const files = new Map<string, string>();
  files.set('pipeline.schema.json', toJson(composePipelineSchema(registry)));
  for (const def of registry) {
    files.set(`operators/${sectionOf(def.kind).folder}/${def.type}.json`, toJson(operatorStageSchema(def)));
  }
  if (recordSchema !== undefined) files.set('record.schema.json', toJson(recordSchema));
  return files;
}

/** `accessRecordSchema` of operators/transforms/parse/record.schema.ts, once that module exists. */
export async function loadRecordSchema(): Promise<unknown> {
  if (!existsSync(RECORD_SCHEMA_MODULE)) return undefined;
  const mod = (await import(pathToFileURL(RECORD_SCHEMA_MODULE).href)) as { accessRecordSchema?: unknown };
  return mod.accessRecordSchema;
}

export async function loadRealRegistry(): Promise<readonly OperatorDefinition[]> {
  return (await import('../../operators/registry.ts')).registry;
}

/** Every file currently under schemas/, relative to it. */
export async function listSchemaFiles(dir = SCHEMAS_DIR): Promise<string[]> {
  if (!existsSync(dir)) return [];
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)).split('\\').join('/'))
    .sort();
}

export async function writeSchemas(dir = SCHEMAS_DIR): Promise<{ written: string[]; removed: string[] }> {
  const files = renderSchemas(await loadRealRegistry(), await loadRecordSchema());
  const removed: string[] = [];
  for (const existing of await listSchemaFiles(dir)) {
    if (!files.has(existing)) {
      await rm(join(dir, existing));
      removed.push(existing);
    }
  }
  for (const [path, content] of files) {
    const target = join(dir, path);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, content);
  }
  return { written: [...files.keys()], removed };
}

function toJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { written, removed } = await writeSchemas();
  for (const path of removed) process.stdout.write(`removed schemas/${path}\n`);
  process.stdout.write(`wrote ${written.length} files under schemas/\n`);
}
