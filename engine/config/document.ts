/**
 * One YAML document of a pipeline file, with the node positions every diagnostic points at.
 * Problems found by any pass are reported here by document path; this is where they get a line,
 * a column and their secrets masked.
 */
import { type Document, isAlias, isMap, isPair, isScalar, isSeq, type LineCounter, type Node } from 'yaml';
import type { Diagnostic } from '../diagnostics.ts';
import type { ErrorCode } from '../errors.ts';
import { redact } from '../redact.ts';

export type PathSegment = string | number;
export type DocPath = readonly PathSegment[];

/** Whether a problem about an entry points at its key (`pahts:`) or at its value. */
export type Target = 'key' | 'value';

export interface Problem {
  readonly path: DocPath;
  readonly code: ErrorCode;
  readonly message: string;
  readonly hint?: string;
  readonly severity?: 'error' | 'warning';
  readonly target?: Target;
  /** A character offset inside the string value at `path` (a position inside an expression). */
  readonly offset?: number;
}

interface Located {
  /** The value node at the path, or at the deepest ancestor that exists in the YAML. */
  readonly node: Node | undefined;
  /** The key node of the map entry holding `node`, when `node` is a map value. */
  readonly key: Node | undefined;
  /** Whether the whole path exists in the YAML (defaults inserted later do not). */
  readonly complete: boolean;
}

export class PipelineDocument {
  readonly file: string;
  readonly doc: Document;
  readonly diagnostics: Diagnostic[] = [];
  /** Values interpolated from `${secret:…}` variables; masked in every message. */
  readonly secrets: string[] = [];
  /** Paths (as JSON) of the scalars whose value came from a `${secret:…}` variable. */
  readonly secretPaths = new Set<string>();
  private readonly lineCounter: LineCounter;
  /** The file's text, to point inside a string value; absent, such problems point at the value. */
  private readonly source: string | undefined;

  constructor(file: string, doc: Document, lineCounter: LineCounter, source?: string) {
    this.file = file;
    this.doc = doc;
    this.lineCounter = lineCounter;
    this.source = source;
  }

  get hasErrors(): boolean {
    return this.diagnostics.some((d) => d.severity === 'error');
  }

  report(problem: Problem): void {
    const { line, column } =
      problem.offset === undefined
        ? this.positionOf(problem.path, problem.target ?? 'value')
        : this.positionInside(problem.path, problem.offset);
    // Messages quote values as JSON strings too, so mask the escaped form of each secret as well.
    const secrets = [...this.secrets, ...this.secrets.map((s) => JSON.stringify(s).slice(1, -1))];
    const diagnostic: Diagnostic = {
      file: this.file,
      line,
      column,
      path: pathText(problem.path),
      code: problem.code,
      severity: problem.severity ?? 'error',
      message: redact(problem.message, secrets),
      ...(problem.hint === undefined ? {} : { hint: redact(problem.hint, secrets) }),
    };
    this.diagnostics.push(diagnostic);
  }

  /** For problems the parser finds, which know an offset but no path. */
  reportAtOffset(offset: number, code: ErrorCode, message: string, severity: 'error' | 'warning' = 'error'): void {
    const { line, col } = this.lineCounter.linePos(offset);
    this.diagnostics.push({ file: this.file, line, column: col, path: '', code, severity, message });
  }

  /** 1-based line and column a diagnostic about `path` points at. */
  positionOf(path: DocPath, target: Target = 'value'): { line: number; column: number } {
    const offset = this.offsetOf(path, target);
    if (offset === undefined) return { line: 1, column: 1 };
    const { line, col } = this.lineCounter.linePos(offset);
    return { line, column: col };
  }

  /**
   * 1-based line and column of character `offset` of the string value at `path`: inside a plain or quoted scalar
   * on one line, or a block scalar (`|`, `>`) line by line. Escapes in double quotes may shift it by a few columns.
   */
  positionInside(path: DocPath, offset: number): { line: number; column: number } {
    const { node, complete } = this.locate(path);
    if (!complete || !isScalar(node) || typeof node.value !== 'string' || !node.range || this.source === undefined) {
      return this.positionOf(path);
    }
    const start = node.range[0];
    let at: number;
    if (node.type === 'BLOCK_LITERAL' || node.type === 'BLOCK_FOLDED') {
      at = blockOffset(this.source, start, node.range[1], offset);
    } else {
      const quoted = node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE' ? 1 : 0;
      at = start + quoted + Math.min(offset, node.value.length);
    }
    const { line, col } = this.lineCounter.linePos(at);
    return { line, column: col };
  }

  /** The node at `path` (aliases resolved), or undefined when the YAML does not hold it. */
  nodeAt(path: DocPath): Node | undefined {
    const found = this.locate(path);
    return found.complete ? found.node : undefined;
  }

  /** Byte offset a diagnostic about `path` points at. */
  offsetOf(path: DocPath, target: Target): number | undefined {
    const { node, key, complete } = this.locate(path);
    // A path the YAML lacks (a missing or defaulted key) is reported at the entry that should hold it.
    const chosen = (target === 'key' || !complete) && key ? key : node;
    return chosen?.range?.[0];
  }

  private locate(path: DocPath): Located {
    let node = this.resolve(this.doc.contents);
    let key: Node | undefined;
    for (const segment of path) {
      if (isMap(node)) {
        const pair = node.items.find((p) => isPair(p) && scalarText(p.key) === String(segment));
        if (!pair) return { node, key, complete: false };
        key = isScalar(pair.key) || isMap(pair.key) || isSeq(pair.key) ? (pair.key as Node) : undefined;
        const value = this.resolve(pair.value as Node | null);
        // `key:` with nothing after it: point at the key.
        if (!value) return { node: key, key, complete: true };
        node = value;
      } else if (isSeq(node)) {
        const item = this.resolve(node.items[Number(segment)] as Node | undefined);
        if (!item) return { node, key, complete: false };
        node = item;
        key = undefined;
      } else {
        return { node, key, complete: false };
      }
    }
    return { node, key, complete: true };
  }

  private resolve(node: Node | null | undefined): Node | undefined {
    if (!node) return undefined;
    if (isAlias(node)) return (node.resolve(this.doc) as Node | undefined) ?? node;
    return node;
  }
}

/**
 * Source offset of character `offset` of a block scalar's value, walking its content lines: each stands in the value
 * for its text and one character (the newline of `|`, the space a single line break folds into with `>`). Blank
 * lines inside a folded scalar may shift the result by a line.
 */
function blockOffset(source: string, start: number, end: number, offset: number): number {
  // The header (`|`, `>-`, `|2`) ends at the first newline; content lines follow, indented alike.
  let lineStart = source.indexOf('\n', start) + 1;
  if (lineStart === 0 || lineStart >= end) return start;
  const indent = /^[ ]*/.exec(source.slice(lineStart, end))?.[0].length ?? 0;
  let left = offset;
  for (;;) {
    const newline = source.indexOf('\n', lineStart);
    const lineEnd = newline < 0 || newline > end ? end : newline;
    const length = Math.max(0, lineEnd - lineStart - indent);
    if (left <= length || newline < 0 || newline >= end)
      return lineStart + Math.min(indent, lineEnd - lineStart) + left;
    left -= length + 1;
    lineStart = newline + 1;
  }
}

export function scalarText(node: unknown): string | undefined {
  return isScalar(node) ? String(node.value) : undefined;
}

/** `spec.sources.nginx.paths[0]` */
export function pathText(path: DocPath): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out ? `.${segment}` : segment;
  }
  return out;
}
