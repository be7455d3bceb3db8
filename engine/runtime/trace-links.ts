/**
 * Span links of the runtime: which sampled batch spans a later span stands for. A sink's commit span links the
 * batches its checkpoint made durable; a transform's output at a tick or a flush (a window) links the batches
 * it received since its last output. Only built when tracing is on.
 */
import type { BatchSpan, TraceParent } from '../telemetry/types.ts';

/** The SDK's default span link limit (OTEL_SPAN_LINK_COUNT_LIMIT): links past it would be dropped anyway. */
export const MAX_LINKS = 128;

/** Contexts of sampled batch spans, the first MAX_LINKS of them. */
export class TraceLinks {
  #contexts: TraceParent[] = [];

  add(span: BatchSpan | undefined): void {
    if (span?.sampled === true && this.#contexts.length < MAX_LINKS) this.#contexts.push(span.context);
  }

  /** The contexts gathered, and a fresh start. */
  take(): TraceParent[] {
    const contexts = this.#contexts;
    if (contexts.length > 0) this.#contexts = [];
    return contexts;
  }
}

type Commit = (sinkId: string, checkpointId: number, startedAt: number, batches: readonly TraceParent[]) => void;

/**
 * Batches each sink wrote, by the checkpoint that covers them: those written before a cut belong to it (the
 * pipeline is drained at the cut), and their commit spans are recorded once that checkpoint has committed.
 */
export class CommitLinks {
  readonly #open = new Map<string, TraceLinks>();
  readonly #cuts: Array<{ id: number; at: number; batches: Map<string, TraceParent[]> }> = [];

  written(sinkId: string, span: BatchSpan | undefined): void {
    if (span?.sampled !== true) return;
    let links = this.#open.get(sinkId);
    if (links === undefined) {
      links = new TraceLinks();
      this.#open.set(sinkId, links);
    }
    links.add(span);
  }

  cut(checkpointId: number, at: number): void {
    const batches = new Map<string, TraceParent[]>();
    for (const [sinkId, links] of this.#open) {
      const taken = links.take();
      if (taken.length > 0) batches.set(sinkId, taken);
    }
    this.#cuts.push({ id: checkpointId, at, batches });
  }

  /** Records the commit spans of every cut up to `checkpointId`. */
  committed(checkpointId: number, commit: Commit): void {
    while (this.#cuts.length > 0 && (this.#cuts[0]?.id ?? Number.POSITIVE_INFINITY) <= checkpointId) {
      const cut = this.#cuts.shift() as { id: number; at: number; batches: Map<string, TraceParent[]> };
      for (const [sinkId, batches] of cut.batches) commit(sinkId, cut.id, cut.at, batches);
    }
  }
}
