/**
 * JSON bodies with a bound on nesting: the string is scanned before parsing, so a body of 100 000 `[`
 * is refused in one pass without building anything. Parsing itself is Fastify's own parser (which also
 * refuses `__proto__` and `constructor.prototype` keys).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';

/** The deepest nesting of arrays and objects in `text`, stopping early once above `limit`. */
export function jsonDepthExceeds(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > limit) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

export class BodyTooDeepError extends Error {
  readonly statusCode = 400;
  readonly code = 'ETL_API_BODY_TOO_DEEP';
  constructor(limit: number) {
    super(`the JSON body nests deeper than ${limit} levels`);
  }
}

/** Replaces the JSON parser of `app` with one that refuses bodies nested deeper than `maxDepth`. */
export function limitJsonDepth(app: FastifyInstance, maxDepth: number): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser(
    'application/json',
    { parseAs: 'string' },
    (request: FastifyRequest, body: string | Buffer, done: (error: Error | null, body?: unknown) => void) => {
      const text = typeof body === 'string' ? body : body.toString('utf8');
      if (jsonDepthExceeds(text, maxDepth)) {
        done(new BodyTooDeepError(maxDepth));
        return;
      }
      parse(request, text, done);
    },
  );
}
