/**
 * A key for where a record was read, the same each time the same input is read again (a replay after a crash):
 * what sinks that de-duplicate on the receiving side (NATS message ids, Elasticsearch document ids) derive ids from.
 * Only a locator tells records apart: a byte offset, a queue sequence or a line number. Fields that change between
 * deliveries of the same input (`deliveries`) are not part of it.
 */
import type { Origin } from '../../engine/record.ts';

/**
 * `<pipeline>/<source>/<input or file>/<sequence or offset>/<line>`, or undefined when the origin holds no locator.
 * The input identity comes first: a rotated file read again under its new name keeps its keys.
 */
export function originKey(pipeline: string, origin: Origin | undefined): string | undefined {
  if (
    origin === undefined ||
    (origin.offset === undefined && origin.sequence === undefined && origin.line === undefined)
  ) {
    return undefined;
  }
  const at = origin.sequence ?? origin.offset ?? '';
  return `${pipeline}/${origin.source}/${origin.input ?? origin.file ?? ''}/${at}/${origin.line ?? ''}`;
}
