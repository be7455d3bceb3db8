/**
 * `format: auto`: per file (or per source when records carry no file), the first `sampleLines` lines are
 * parsed with every candidate and scored; the format that fits most lines is tried first for the rest of
 * the file, and the others, best first, for each line it does not fit. A directory mixing formats thus
 * parses right line by line, while a uniform file costs one parse per line.
 */
import type { AccessParser } from './formats/index.ts';
import type { AccessRecord } from './record.schema.ts';

export interface Candidate {
  readonly label: string;
  readonly parser: AccessParser;
}

export interface Decision {
  readonly file: string;
  /** Label of the chosen format, or undefined when no candidate fits any sampled line. */
  readonly format: string | undefined;
  /** Share of the sampled lines the chosen format fits, 0..1. */
  readonly confidence: number;
  readonly sampleLines: number;
  /** Format decided earlier for this file, when this decision revises it. */
  readonly previous: string | undefined;
}

interface FileState {
  readonly file: string;
  readonly scores: number[];
  sampled: number;
  /** Candidate indexes, best first. */
  order: number[];
  decided: string | undefined;
  hasDecision: boolean;
}

/** Files remembered at once; the least recently first-seen is forgotten beyond this (log rotation). */
const MAX_FILES = 10_000;

export class AutoDetector {
  private readonly candidates: readonly Candidate[];
  private readonly sampleLines: number;
  private readonly files = new Map<string, FileState>();
  private lastFile: string | undefined;
  private lastState: FileState | undefined;
  /** Files sampled since the last `decisions()` call that have no decision yet. */
  private readonly pending = new Set<FileState>();
  /** Lines parsed by a format other than the file's first choice, by candidate index. */
  readonly fallbacks: number[];
  private reason = '';

  constructor(candidates: readonly Candidate[], sampleLines: number) {
    this.candidates = candidates;
    this.sampleLines = sampleLines;
    this.fallbacks = candidates.map(() => 0);
  }

  /** Why the last `parse` returned null. */
  failure(): string {
    return this.reason;
  }

  parse(file: string, line: string, end: number): AccessRecord | null {
    const state = file === this.lastFile && this.lastState !== undefined ? this.lastState : this.state(file);
    if (state.sampled < this.sampleLines) return this.sample(state, line, end);
    const order = state.order;
    const parsers = this.candidates;
    for (let i = 0; i < order.length; i++) {
      const idx = order[i] as number;
      const rec = (parsers[idx] as Candidate).parser.parse(line, end, false);
      if (rec !== null) {
        if (i > 0) this.fallbacks[idx] = (this.fallbacks[idx] as number) + 1;
        return rec;
      }
      if (i === 0) this.reason = (parsers[idx] as Candidate).parser.failure();
    }
    return this.lenient(order, line, end);
  }

  /**
   * Decisions made since the last call: a file's first decision once its first batch is sampled, and a
   * revision if the full sample prefers another format.
   */
  decisions(): Decision[] {
    const out: Decision[] = [];
    for (const state of this.pending) {
      const decision = this.decide(state);
      if (decision !== undefined) out.push(decision);
    }
    this.pending.clear();
    return out;
  }

  private state(file: string): FileState {
    let state = this.files.get(file);
    if (state === undefined) {
      if (this.files.size >= MAX_FILES) {
        const oldest = this.files.keys().next().value as string;
        this.files.delete(oldest);
      }
      state = {
        file,
        scores: this.candidates.map(() => 0),
        sampled: 0,
        order: this.candidates.map((_, i) => i),
        decided: undefined,
        hasDecision: false,
      };
      this.files.set(file, state);
    }
    this.lastFile = file;
    this.lastState = state;
    return state;
  }

  private sample(state: FileState, line: string, end: number): AccessRecord | null {
    let best: AccessRecord | null = null;
    let bestIdx = -1;
    for (let i = 0; i < this.candidates.length; i++) {
      const rec = (this.candidates[i] as Candidate).parser.parse(line, end, false);
      if (rec === null) continue;
      state.scores[i] = (state.scores[i] as number) + 1;
      if (bestIdx < 0 || (state.scores[i] as number) > (state.scores[bestIdx] as number)) {
        best = rec;
        bestIdx = i;
      }
    }
    state.sampled++;
    this.pending.add(state);
    if (best !== null) return best;
    // Every candidate just failed on this line; report the reason of the one that fits the file best so far.
    let leader = 0;
    for (let i = 1; i < state.scores.length; i++)
      if ((state.scores[i] as number) > (state.scores[leader] as number)) leader = i;
    this.reason = (this.candidates[leader] as Candidate).parser.failure();
    return this.lenient(state.order, line, end);
  }

  /** Second pass for lines whose server did not escape quotes (or left trailing blanks). */
  private lenient(order: readonly number[], line: string, end: number): AccessRecord | null {
    for (const idx of order) {
      const rec = (this.candidates[idx] as Candidate).parser.parse(line, end, true);
      if (rec !== null) return rec;
    }
    this.reason = `no candidate format fits; ${this.reason}`;
    return null;
  }

  private decide(state: FileState): Decision | undefined {
    const order = this.candidates.map((_, i) => i);
    order.sort((a, b) => (state.scores[b] as number) - (state.scores[a] as number) || a - b);
    state.order = order;
    const top = order[0] as number;
    const topScore = state.scores[top] as number;
    const format = topScore > 0 ? (this.candidates[top] as Candidate).label : undefined;
    const previous = state.decided;
    const first = !state.hasDecision;
    state.decided = format;
    state.hasDecision = true;
    if (!first && previous === format) return undefined;
    return {
      file: state.file,
      format,
      confidence: state.sampled === 0 ? 0 : topScore / state.sampled,
      sampleLines: state.sampled,
      previous: first ? undefined : previous,
    };
  }
}
