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

  constructor(file: string, doc: Document, lineCounter: LineCounter) {
    this.file = file;
    this.doc = doc;
    this.lineCounter = lineCounter;
  }

  get hasErrors(): boolean {
    return this.diagnostics.some((d) => d.severity === 'error');
  }

  report(problem: Problem): void {
    const { line, column } = this.positionOf(problem.path, problem.target ?? 'value');
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
