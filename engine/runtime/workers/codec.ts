/**
 * How a batch crosses between the main thread and a stage's workers (bench/worker-crossing.ts measures each way;
 * engine/runtime/workers/README.md tells the figures).
 *
 * In: raw lines (a source's records: `message` and an origin, nothing else) travel as one UTF-8 buffer with their
 * lengths, transferred rather than copied; other records in the compact encoding of columns.ts. Origins ride on a
 * symbol, which cloning drops: they travel column by column in typed arrays.
 * Out: records in the compact encoding; an output record's origin as the index of the input record carrying the
 * same origin object (what stages do: they copy it on), so the main thread puts the very object back.
 */
import type { PortRecords } from '../../operator.ts';
import { type EtlRecord, ORIGIN, type Origin } from '../../record.ts';
import { decodeRecords, type EncodedRecords, encodeRecords, recordsTransferList } from './columns.ts';

/** Origins of a batch, column by column; -1 / NaN where a record has none or an origin lacks the field. */
export interface EncodedOrigins {
  readonly sources: string[];
  readonly files: string[];
  readonly source: Int32Array;
  readonly file: Int32Array;
  readonly offset: Float64Array;
  readonly line: Float64Array;
}

/** Records in columns, or as they are (structured-cloned) when they have too many shapes for a table. */
export type RecordsPayload = { readonly columns: EncodedRecords } | { readonly clone: EtlRecord[] };

export type EncodedBatch =
  | {
      readonly kind: 'lines';
      readonly text: Uint8Array;
      readonly lengths: Uint32Array;
      readonly origins: EncodedOrigins;
    }
  | { readonly kind: 'records'; readonly records: RecordsPayload; readonly origins: EncodedOrigins };

function payload(records: readonly EtlRecord[]): RecordsPayload {
  const columns = encodeRecords(records);
  return columns ? { columns } : { clone: records as EtlRecord[] };
}

function unpack(records: RecordsPayload): EtlRecord[] {
  return 'columns' in records ? decodeRecords(records.columns) : records.clone;
}

function payloadTransferList(records: RecordsPayload): ArrayBuffer[] {
  return 'columns' in records ? recordsTransferList(records.columns) : [];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function isPlainLine(record: EtlRecord): boolean {
  if (typeof record.message !== 'string') return false;
  for (const key in record) if (key !== 'message') return false;
  return true;
}

function encodeOrigins(records: readonly EtlRecord[]): EncodedOrigins {
  const n = records.length;
  const sources: string[] = [];
  const files: string[] = [];
  const sourceIndex = new Map<string, number>();
  const fileIndex = new Map<string, number>();
  const out: EncodedOrigins = {
    sources,
    files,
    source: new Int32Array(n),
    file: new Int32Array(n),
    offset: new Float64Array(n),
    line: new Float64Array(n),
  };
  let lastFile: string | undefined;
  let lastFileIdx = -1;
  for (let i = 0; i < n; i++) {
    const origin = (records[i] as EtlRecord)[ORIGIN];
    if (origin === undefined) {
      out.source[i] = -1;
      out.file[i] = -1;
      out.offset[i] = Number.NaN;
      out.line[i] = Number.NaN;
      continue;
    }
    let s = sourceIndex.get(origin.source);
    if (s === undefined) {
      s = sources.push(origin.source) - 1;
      sourceIndex.set(origin.source, s);
    }
    out.source[i] = s;
    const file = origin.file;
    if (file === undefined) out.file[i] = -1;
    else if (file === lastFile) out.file[i] = lastFileIdx;
    else {
      let f = fileIndex.get(file);
      if (f === undefined) {
        f = files.push(file) - 1;
        fileIndex.set(file, f);
      }
      lastFile = file;
      lastFileIdx = f;
      out.file[i] = f;
    }
    out.offset[i] = origin.offset ?? Number.NaN;
    out.line[i] = origin.line ?? Number.NaN;
  }
  return out;
}

function decodeOrigin(origins: EncodedOrigins, i: number): Origin | undefined {
  const s = origins.source[i] as number;
  if (s < 0) return undefined;
  const origin: { source: string; file?: string; offset?: number; line?: number } = {
    source: origins.sources[s] as string,
  };
  const f = origins.file[i] as number;
  if (f >= 0) origin.file = origins.files[f] as string;
  const offset = origins.offset[i] as number;
  if (!Number.isNaN(offset)) origin.offset = offset;
  const line = origins.line[i] as number;
  if (!Number.isNaN(line)) origin.line = line;
  return origin;
}

/** A batch ready to post; `transferList(encoded)` names the buffers to move rather than copy. */
export function encodeBatch(records: readonly EtlRecord[]): EncodedBatch {
  const origins = encodeOrigins(records);
  const n = records.length;
  const messages: string[] = new Array(n);
  const lengths = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const record = records[i] as EtlRecord;
    if (!isPlainLine(record)) return { kind: 'records', records: payload(records), origins };
    const message = record.message as string;
    messages[i] = message;
    lengths[i] = message.length;
  }
  // One text and one native encode for the batch; lengths stay those of UTF-16, which a well-formed text keeps.
  const all = messages.join('');
  if (n === 0 || !all.isWellFormed()) return { kind: 'records', records: payload(records), origins };
  return { kind: 'lines', text: encoder.encode(all), lengths, origins };
}

export function decodeBatch(encoded: EncodedBatch): EtlRecord[] {
  const origins = encoded.origins;
  if (encoded.kind === 'records') {
    const records = unpack(encoded.records);
    for (let i = 0; i < records.length; i++) {
      const origin = decodeOrigin(origins, i);
      if (origin !== undefined) (records[i] as EtlRecord)[ORIGIN] = origin;
    }
    return records;
  }
  // One decode for the batch; each message is a slice of it (well-formed text: UTF-16 lengths are kept).
  const all = decoder.decode(encoded.text);
  const records: EtlRecord[] = new Array(encoded.lengths.length);
  let at = 0;
  for (let i = 0; i < encoded.lengths.length; i++) {
    const end = at + (encoded.lengths[i] as number);
    const record: EtlRecord = { message: all.slice(at, end) };
    const origin = decodeOrigin(origins, i);
    if (origin !== undefined) record[ORIGIN] = origin;
    records[i] = record;
    at = end;
  }
  return records;
}

export function transferList(encoded: EncodedBatch): ArrayBuffer[] {
  const o = encoded.origins;
  const buffers = [o.source.buffer, o.file.buffer, o.offset.buffer, o.line.buffer] as ArrayBuffer[];
  if (encoded.kind === 'lines') buffers.push(encoded.text.buffer as ArrayBuffer, encoded.lengths.buffer as ArrayBuffer);
  else buffers.push(...payloadTransferList(encoded.records));
  return buffers;
}

/**
 * A stage's output, as the worker sends it back: per port the records and, per record, the index of the input
 * record whose origin object it carries (-2: its own origin, in `own`; -1: none).
 */
export interface EncodedPorts {
  readonly ports: { [port: string]: { records: RecordsPayload; origin: Int32Array; own: Origin[] } };
}

export function encodePorts(ports: PortRecords, input: readonly EtlRecord[]): EncodedPorts {
  let index: Map<Origin, number> | undefined;
  const out: EncodedPorts['ports'] = {};
  for (const port in ports) {
    const records = ports[port] as EtlRecord[];
    const origin = new Int32Array(records.length);
    const own: Origin[] = [];
    for (let i = 0; i < records.length; i++) {
      const o = (records[i] as EtlRecord)[ORIGIN];
      if (o === undefined) {
        origin[i] = -1;
        continue;
      }
      // Records mostly keep the origin of the input record at the same place: try it before the map.
      if (i < input.length && (input[i] as EtlRecord)[ORIGIN] === o) {
        origin[i] = i;
        continue;
      }
      if (index === undefined) {
        index = new Map();
        for (let j = input.length - 1; j >= 0; j--) {
          const x = (input[j] as EtlRecord)[ORIGIN];
          if (x !== undefined) index.set(x, j);
        }
      }
      const at = index.get(o);
      if (at !== undefined) origin[i] = at;
      else {
        origin[i] = -2;
        own.push({ ...o });
      }
    }
    out[port] = { records: payload(records), origin, own };
  }
  return { ports: out };
}

export function portsTransferList(encoded: EncodedPorts): ArrayBuffer[] {
  return Object.values(encoded.ports).flatMap((p) => [
    p.origin.buffer as ArrayBuffer,
    ...payloadTransferList(p.records),
  ]);
}

/** Puts the origins back: the input record's own object where the worker kept it. */
export function decodePorts(encoded: EncodedPorts, input: readonly EtlRecord[]): PortRecords {
  const ports: PortRecords = {};
  for (const port in encoded.ports) {
    const { records: packed, origin, own } = encoded.ports[port] as EncodedPorts['ports'][string];
    const records = unpack(packed);
    let next = 0;
    for (let i = 0; i < records.length; i++) {
      const at = origin[i] as number;
      if (at >= 0) (records[i] as EtlRecord)[ORIGIN] = (input[at] as EtlRecord)[ORIGIN];
      else if (at === -2) (records[i] as EtlRecord)[ORIGIN] = own[next++] as Origin;
    }
    ports[port] = records;
  }
  return ports;
}
