import type { ErrorCode } from './errors.ts';

/** One problem in a pipeline document, with where it is and how to fix it. */
export interface Diagnostic {
  readonly file: string;
  /** 1-based; 0 when the problem has no place in the file (e.g. a missing file). */
  readonly line: number;
  readonly column: number;
  /** JSON pointer-like path in the document, e.g. `spec.sources.nginx.paths`. */
  readonly path: string;
  readonly code: ErrorCode;
  readonly severity: 'error' | 'warning';
  readonly message: string;
  readonly hint?: string;
}

export function hasErrors(diagnostics: readonly Diagnostic[]): boolean {
  return diagnostics.some((d) => d.severity === 'error');
}

/** `file:line:col: error ETL_X: message (hint)` — the format editors and CI logs link from. */
export function formatDiagnostic(d: Diagnostic): string {
  const where = d.line > 0 ? `${d.file}:${d.line}:${d.column}` : d.file;
  const hint = d.hint ? `\n  hint: ${d.hint}` : '';
  return `${where}: ${d.severity} ${d.code}: ${d.message}${d.path ? ` (at ${d.path})` : ''}${hint}`;
}
