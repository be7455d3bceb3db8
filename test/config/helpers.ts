/** Shared helpers of the loader tests. */
import { expect } from 'vitest';
import { type LoadResult, loadPipelinesFromString } from '../../engine/config/load.ts';
import type { Diagnostic } from '../../engine/diagnostics.ts';
import type { ErrorCode } from '../../engine/errors.ts';
import { testRegistry } from './operators.ts';

export function load(yaml: string, env: NodeJS.ProcessEnv = {}): Promise<LoadResult> {
  return loadPipelinesFromString(yaml, 'pipeline.yaml', { registry: testRegistry, env });
}

/** The one diagnostic with `code`; fails when there is none or several. */
export function only(result: LoadResult, code: ErrorCode): Diagnostic {
  const found = result.diagnostics.filter((d) => d.code === code);
  expect(found, `diagnostics with ${code}: ${JSON.stringify(result.diagnostics, null, 2)}`).toHaveLength(1);
  return found[0] as Diagnostic;
}

export function at(d: Diagnostic): [number, number] {
  return [d.line, d.column];
}

/** A valid pipeline: lines 1–18 as numbered in the comments of the tests. */
export const VALID = `apiVersion: etl/v1
kind: Pipeline
metadata:
  name: web
spec:
  sources:
    nginx:
      type: file
      paths: [logs/*.log]
  operators:
    parsed:
      type: parse
      inputs: [nginx]
  sinks:
    out:
      type: file
      inputs: [parsed]
      path: out.jsonl
`;
