/**
 * Undoes the escaping Apache, nginx and nginx `escape=json` apply to logged values. One decoder serves
 * all three because their escapes never collide: a backslash is always escaped itself (`\\` or `\x5C`),
 * so `\x41`, `\u0041` and `\n` are unambiguous wherever they appear.
 * `\xHH` sequences are raw bytes: consecutive ones are decoded together as UTF-8 (invalid → U+FFFD).
 */
const decoder = new TextDecoder('utf-8');
const bytes = new Uint8Array(4096);

function hexValue(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  const lower = code | 0x20;
  if (lower >= 97 && lower <= 102) return lower - 87;
  return -1;
}

/** Decodes `text[start, end)`. Callers check for a backslash first; this is the slow path. */
export function unescapeRange(text: string, start: number, end: number): string {
  let out = '';
  let runStart = start;
  let byteCount = 0;
  let i = start;
  while (i < end) {
    if (text.charCodeAt(i) !== 92 /* \ */ || i + 1 >= end) {
      if (byteCount > 0) {
        out += decoder.decode(bytes.subarray(0, byteCount));
        byteCount = 0;
      }
      i++;
      continue;
    }
    const next = text.charCodeAt(i + 1);
    if (next === 120 /* x */ && i + 4 <= end) {
      const hi = hexValue(text.charCodeAt(i + 2));
      const lo = hexValue(text.charCodeAt(i + 3));
      if (hi >= 0 && lo >= 0) {
        if (byteCount === 0) out += text.slice(runStart, i);
        else if (byteCount === bytes.length) {
          out += decoder.decode(bytes.subarray(0, byteCount));
          byteCount = 0;
        }
        bytes[byteCount++] = (hi << 4) | lo;
        i += 4;
        runStart = i;
        continue;
      }
    }
    if (byteCount > 0) {
      out += decoder.decode(bytes.subarray(0, byteCount));
      byteCount = 0;
    }
    out += text.slice(runStart, i);
    let decoded: string | undefined;
    let width = 2;
    switch (next) {
      case 34:
        decoded = '"';
        break;
      case 92:
        decoded = '\\';
        break;
      case 47:
        decoded = '/';
        break;
      case 110:
        decoded = '\n';
        break;
      case 116:
        decoded = '\t';
        break;
      case 114:
        decoded = '\r';
        break;
      case 98:
        decoded = '\b';
        break;
      case 102:
        decoded = '\f';
        break;
      case 118:
        decoded = '\v';
        break;
      case 117 /* u */:
        {
          if (i + 6 <= end) {
            let value = 0;
            for (let k = i + 2; k < i + 6; k++) {
              const h = hexValue(text.charCodeAt(k));
              if (h < 0) {
                value = -1;
                break;
              }
              value = (value << 4) | h;
            }
            if (value >= 0) {
              decoded = String.fromCharCode(value);
              width = 6;
            }
          }
          break;
        }
    }
    if (decoded === undefined) {
      // Not an escape any of the servers writes: keep it as it is.
      runStart = i;
      i += 2;
      continue;
    }
    out += decoded;
    i += width;
    runStart = i;
  }
  if (byteCount > 0) out += decoder.decode(bytes.subarray(0, byteCount));
  else out += text.slice(runStart, end);
  return out;
}
