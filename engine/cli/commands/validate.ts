/** `etl validate <paths…>`: every problem of every pipeline, without running anything. */
import { loadPipelines } from '../../config/load.ts';
import { type Diagnostic, formatDiagnostic } from '../../diagnostics.ts';
import type { OperatorDefinition } from '../../operator.ts';

export interface ValidateOptions {
  format: 'text' | 'json';
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
  /** For tests; default operators/registry.ts, the process environment and cwd. */
  registry?: readonly OperatorDefinition[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** Exit code: 1 when any pipeline has an error; warnings alone pass. */
export async function runValidate(paths: string[], options: ValidateOptions): Promise<number> {
  const { pipelines, diagnostics, files, skipped } = await loadPipelines(paths, {
    ...(options.registry ? { registry: options.registry } : {}),
    ...(options.env ? { env: options.env } : {}),
    ...(options.cwd ? { cwd: options.cwd } : {}),
  });
  const errors = diagnostics.filter((d) => d.severity === 'error').length;
  const valid = errors === 0;
  if (options.format === 'json') {
    // Diagnostics are already redacted by the loader; names carry no secrets.
    const report = { valid, pipelines: pipelines.map((p) => p.name), diagnostics, skipped };
    options.out.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    for (const d of diagnostics) options.out.write(`${formatDiagnostic(d)}\n`);
    if (skipped.length > 0) {
      const shown = skipped.slice(0, 5).join(', ') + (skipped.length > 5 ? ', …' : '');
      options.out.write(`skipped ${plural(skipped.length, 'YAML file')} holding no etl pipeline: ${shown}\n`);
    }
    options.out.write(`${summary(pipelines.length, files.length, diagnostics)}\n`);
  }
  return valid ? 0 : 1;
}

/** `2 pipelines in 1 file: valid` or `3 errors, 1 warning`. */
export function summary(pipelineCount: number, fileCount: number, diagnostics: readonly Diagnostic[]): string {
  const errors = diagnostics.filter((d) => d.severity === 'error').length;
  const warnings = diagnostics.length - errors;
  const warningText = warnings > 0 ? plural(warnings, 'warning') : '';
  if (errors > 0) return [plural(errors, 'error'), warningText].filter(Boolean).join(', ');
  const head = `${plural(pipelineCount, 'pipeline')} in ${plural(fileCount, 'file')}: valid`;
  return warningText ? `${head}, ${warningText}` : head;
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
