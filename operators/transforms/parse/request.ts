/**
 * Splits a logged request line (`GET /a?b=1 HTTP/1.1`) into method, path, query and protocol. Lines
 * that are not HTTP (TLS handshakes on a plain port, `-`, junk) keep `request` and leave the parts null.
 */
import type { AccessRecord } from '../../shared/log-records.ts';

/** RFC 9110 token characters, by char code. */
const TOKEN = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
  TOKEN[c.charCodeAt(0)] = 1;

const MAX_METHOD_LENGTH = 32;

function isMethod(text: string, end: number): boolean {
  if (end === 0 || end > MAX_METHOD_LENGTH) return false;
  for (let i = 0; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c >= 128 || TOKEN[c] === 0) return false;
  }
  return true;
}

/** A request target as HTTP allows it: origin form, `*`, absolute form, or authority form (CONNECT). */
function isTarget(uri: string, method: string): boolean {
  const c = uri.charCodeAt(0);
  if (c === 47 /* / */ || (c === 42 /* * */ && uri.length === 1)) return true;
  if (method === 'CONNECT') return uri.length > 0 && uri.indexOf(' ') < 0;
  const scheme = uri.indexOf('://');
  return scheme > 0 && scheme < 16;
}

/** Sets request, method, path, query and protocol on `rec` from the (unescaped) request line. */
export function applyRequest(rec: AccessRecord, request: string | null): void {
  rec.request = request;
  if (request === null) return;
  const sp1 = request.indexOf(' ');
  if (sp1 <= 0 || !isMethod(request, sp1)) return;
  const sp2 = request.lastIndexOf(' ');
  let uri: string;
  let protocol: string | null = null;
  if (sp2 > sp1 && request.startsWith('HTTP/', sp2 + 1)) {
    uri = request.slice(sp1 + 1, sp2);
    protocol = request.slice(sp2 + 1);
  } else {
    uri = request.slice(sp1 + 1);
  }
  const method = request.slice(0, sp1);
  if (!isTarget(uri, method)) return;
  rec.method = method;
  rec.protocol = protocol;
  applyUri(rec, uri);
}

/** Sets path and query from a request target (`/a?b` → `/a`, `b`). */
export function applyUri(rec: AccessRecord, uri: string | null): void {
  if (uri === null) {
    rec.path = null;
    rec.query = null;
    return;
  }
  const q = uri.indexOf('?');
  if (q < 0) {
    rec.path = uri;
    rec.query = null;
  } else {
    rec.path = uri.slice(0, q);
    rec.query = uri.slice(q + 1);
  }
}
