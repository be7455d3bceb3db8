/** Counting the rows of COPY data, so that what PostgreSQL reports copied can be checked against what was sent. */
import type { CopyFormat } from './driver.ts';

/** Rows in `bytes`: whole rows of `format`, without binary's header or trailer. */
export function countCopyRows(bytes: Uint8Array, format: CopyFormat): number {
  return format === 'binary' ? countBinaryRows(bytes) : countTextRows(bytes);
}

/** Rows of COPY text: one per newline (escaping keeps newlines out of values). */
function countTextRows(bytes: Uint8Array): number {
  let rows = 0;
  for (let at = bytes.indexOf(10); at !== -1; at = bytes.indexOf(10, at + 1)) rows++;
  return rows;
}

/** Rows of COPY binary: each a 16-bit field count, then per field a 32-bit length (-1: NULL) and its bytes. */
function countBinaryRows(bytes: Uint8Array): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let rows = 0;
  let at = 0;
  while (at < bytes.length) {
    const fields = view.getUint16(at);
    at += 2;
    for (let f = 0; f < fields; f++) at += 4 + Math.max(0, view.getInt32(at));
    rows++;
  }
  if (at !== bytes.length) throw new Error(`COPY binary data ends inside a row (${at - bytes.length} bytes short)`);
  return rows;
}
