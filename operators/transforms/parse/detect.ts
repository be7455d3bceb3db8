/**
 * `format: auto`: per file (or per source when records carry no file), the first `sampleLines` lines are
 * parsed with every candidate and scored; the format that explains the sample best is tried first for the
 * rest of the file, and the others, best first, for each line it does not fit. A directory mixing formats
 * thus parses right line by line, while a uniform file costs one parse per line.
 *
 * Fitting is not enough: `combined` also "fits" a vhost_combined line (the host taken for the client,
 * `- -` for the user), and a tolerant variant fits anything with fields appended. So each fit is scored
 * by how well the record explains the line: a clean fit counts 3, a tolerant variant's fit with fields
 * left over after the format 2, a fit with a value that is not what its field holds (a client address
 * that is not an address, a blank inside ident or user, a comma in the host, a `$pipe` that is not `p`
 * or `.`) 1. Ties go to the format with more fields (the more specific), then to the candidate listed
 * first (strict formats before their tolerant variants).
 */
import { isIP } from 'node:net';
import type { LineParser } from './formats/template.ts';
import type { AccessRecord } from '../../shared/log-records.ts';

export interface Candidate {
  readonly label: string;
  readonly parser: LineParser<object>;
  /** Its records are error-log records, for the `error_log` port. */
  readonly errorLog: boolean;
  /** A tolerant variant: never retried leniently; `trailingFields` says whether it left fields over. */
  readonly tolerant: boolean;
  /** Fields the format has; more wins a tie. */
  readonly specificity: number;
}

interface Tolerant {
  readonly trailingFields: number;
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
  /** The chosen format reads error logs: its records leave on the `error_log` port. */
  readonly errorLog: boolean;
}

interface FileState {
  readonly file: string;
  /** Per candidate: the sum of `fitPoints` over the sampled lines. */
  readonly points: number[];
  /** Per candidate: sampled lines it parsed. */
  readonly fits: number[];
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
  /** Whether the last record `parse` returned is an error-log record. */
  errorLog = false;
  private reason = '';
  /** Scratch: each candidate's record for the line being sampled. */
  private readonly lineRecords: (object | null)[];

  constructor(candidates: readonly Candidate[], sampleLines: number) {
    this.candidates = candidates;
    this.sampleLines = sampleLines;
    this.fallbacks = candidates.map(() => 0);
    this.lineRecords = candidates.map(() => null);
  }

  /** Why the last `parse` returned null. */
  failure(): string {
    return this.reason;
  }

  parse(file: string, line: string, end: number): object | null {
    const state = file === this.lastFile && this.lastState !== undefined ? this.lastState : this.state(file);
    if (state.sampled < this.sampleLines) return this.sample(state, line, end);
    const order = state.order;
    const parsers = this.candidates;
    for (let i = 0; i < order.length; i++) {
      const idx = order[i] as number;
      const candidate = parsers[idx] as Candidate;
      const rec = candidate.parser.parse(line, end, false);
      if (rec !== null) {
        if (i > 0) this.fallbacks[idx] = (this.fallbacks[idx] as number) + 1;
        this.errorLog = candidate.errorLog;
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
        points: this.candidates.map(() => 0),
        fits: this.candidates.map(() => 0),
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

  private sample(state: FileState, line: string, end: number): object | null {
    const candidates = this.candidates;
    const records = this.lineRecords;
    let any = false;
    for (let i = 0; i < candidates.length; i++) {
      const candidate = candidates[i] as Candidate;
      const rec = candidate.parser.parse(line, end, false);
      records[i] = rec;
      if (rec === null) continue;
      any = true;
      state.fits[i] = (state.fits[i] as number) + 1;
      state.points[i] = (state.points[i] as number) + fitPoints(rec, candidate);
    }
    state.sampled++;
    this.pending.add(state);
    if (any) {
      // The record of the candidate that leads the file so far, among those that parsed this line.
      let best = -1;
      for (let i = 0; i < candidates.length; i++) {
        if (records[i] !== null && (best < 0 || this.compare(state, i, best) < 0)) best = i;
      }
      const rec = records[best] as object;
      records.fill(null);
      this.errorLog = (candidates[best] as Candidate).errorLog;
      return rec;
    }
    // Every candidate just failed on this line; report the reason of the one that fits the file best so far.
    let leader = 0;
    for (let i = 1; i < candidates.length; i++) if (this.compare(state, i, leader) < 0) leader = i;
    this.reason = (candidates[leader] as Candidate).parser.failure();
    return this.lenient(state.order, line, end);
  }

  /** Negative when candidate `a` explains the file's sample better than `b`. */
  private compare(state: FileState, a: number, b: number): number {
    const ca = this.candidates[a] as Candidate;
    const cb = this.candidates[b] as Candidate;
    return (
      (state.points[b] as number) - (state.points[a] as number) ||
      (state.fits[b] as number) - (state.fits[a] as number) ||
      ((state.fits[a] as number) > 0 ? cb.specificity - ca.specificity : 0) ||
      a - b
    );
  }

  /** Second pass for lines whose server did not escape quotes (or left trailing blanks). */
  private lenient(order: readonly number[], line: string, end: number): object | null {
    for (const idx of order) {
      const candidate = this.candidates[idx] as Candidate;
      if (candidate.tolerant || candidate.errorLog) continue;
      const rec = candidate.parser.parse(line, end, true);
      if (rec !== null) {
        this.errorLog = false;
        return rec;
      }
    }
    this.reason = `no candidate format fits; ${this.reason}`;
    return null;
  }

  private decide(state: FileState): Decision | undefined {
    const order = this.candidates.map((_, i) => i);
    order.sort((a, b) => this.compare(state, a, b));
    state.order = order;
    const top = order[0] as number;
    const topFits = state.fits[top] as number;
    const format = topFits > 0 ? (this.candidates[top] as Candidate).label : undefined;
    const previous = state.decided;
    const first = !state.hasDecision;
    state.decided = format;
    state.hasDecision = true;
    if (!first && previous === format) return undefined;
    return {
      file: state.file,
      format,
      confidence: state.sampled === 0 ? 0 : topFits / state.sampled,
      sampleLines: state.sampled,
      previous: first ? undefined : previous,
      errorLog: topFits > 0 && (this.candidates[top] as Candidate).errorLog,
    };
  }
}

/**
 * How well a candidate's record explains its line: 3 for a clean fit, 2 when a tolerant variant had to keep
 * fields it does not know, 1 when a value is not what its field holds on a line of that format.
 */
function fitPoints(record: object, candidate: Candidate): number {
  if (candidate.errorLog) return 3;
  const rec = record as AccessRecord;
  if (rec.client_ip !== null && isIP(rec.client_ip) === 0) return 1;
  if (rec.ident !== null && rec.ident.indexOf(' ') >= 0) return 1;
  if (rec.user !== null && rec.user.indexOf(' ') >= 0) return 1;
  if (rec.vhost !== null && (rec.vhost.indexOf(',') >= 0 || rec.vhost.indexOf('"') >= 0)) return 1;
  // nginx's $pipe is `p` or `.`; anything longer is the rest of a line some other format wrote.
  const pipe = (rec.extra as Record<string, unknown>).pipe;
  if (pipe !== undefined && pipe !== null && pipe !== 'p' && pipe !== '.') return 1;
  if (candidate.tolerant && (candidate.parser as unknown as Tolerant).trailingFields > 0) return 2;
  return 3;
}
