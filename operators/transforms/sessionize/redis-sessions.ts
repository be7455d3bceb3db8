/**
 * Sessions kept in Redis, shared by every instance of a pipeline that uses the same server (several machines
 * reading their own logs, several instances on one queue): a visitor's session goes on whichever instance sees its
 * next request. One script call per chunk of keys reads each key's session, places the batch's records of that key
 * in order, and writes the session back, atomically per key.
 *
 * A value is `session;marker;before;committed`: the session (`start,last,seq`, epoch ms), who wrote it
 * (operators/shared/run-marker.ts), the session that write started from, and the last session of the key a
 * committed snapshot left. A rerun after a crash replays the records after its committed cut: a value its own dead
 * run wrote for a snapshot that never committed is read as its `committed` session, and a value an earlier attempt
 * at this very batch wrote as its `before`; so a replay assigns the ids and sequence numbers the first attempt
 * did, and nothing counts twice. Keys expire `gap + max_out_of_order` after their last write (plus a minute).
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { errorMessage } from '../../../engine/errors.ts';
import type { Logger } from '../../../engine/operator.ts';
import { retry } from '../../../engine/retry.ts';
import { type Epochs, formatMarker } from '../../shared/run-marker.ts';

/** One record to place: its key and event time (epoch ms). */
export interface Placement {
  readonly key: string;
  readonly time: number;
}

/** Keys per script call. */
const CHUNK = 256;

const PLACE = `local gap = tonumber(ARGV[1])
local ttl = ARGV[2]
local me, epoch, batch, nowc = ARGV[3], ARGV[4], tonumber(ARGV[6]), tonumber(ARGV[7])
local marker = me .. '|' .. epoch .. '|' .. ARGV[5] .. '|' .. ARGV[6]
local earlier = {}
for e, s in string.gmatch(ARGV[8], '([^=;]+)=(%d+)') do earlier[e] = tonumber(s) end
local function state(text)
  local s, l, q = string.match(text or '', '^(%-?%d+),(%-?%d+),(%d+)$')
  if not s then return nil end
  return {tonumber(s), tonumber(l), tonumber(q)}
end
local function text(st)
  if not st then return '' end
  return tostring(st[1]) .. ',' .. tostring(st[2]) .. ',' .. tostring(st[3])
end
local out = {}
for i, key in ipairs(KEYS) do
  local cur, before, prev = nil, nil, nil
  local base, committed = nil, nil
  local v = redis.call('GET', key)
  if v then
    local c, m, b, p = string.match(v, '^([^;]*);([^;]*);([^;]*);([^;]*)$')
    cur, before, prev = state(c), state(b), state(p)
    local inst, e, s, bt = string.match(m or '', '^([^|]*)|([^|]*)|(%d+)|(%d+)$')
    if inst ~= me then
      base, committed = cur, cur
    elseif e == epoch then
      if tonumber(bt) == batch then
        base, committed = before, prev
      elseif tonumber(s) <= nowc then
        base, committed = cur, cur
      else
        base, committed = cur, prev
      end
    elseif earlier[e] and tonumber(s) <= earlier[e] then
      base, committed = cur, cur
    else
      base, committed = prev, prev
    end
  end
  local st = base and {base[1], base[2], base[3]} or nil
  local placed = {}
  for t in string.gmatch(ARGV[8 + i], '%-?%d+') do
    t = tonumber(t)
    if st and t <= st[2] + gap then
      if t > st[2] then st[2] = t end
      st[3] = st[3] + 1
    else
      st = {t, t, 1}
    end
    placed[#placed + 1] = st[1]
    placed[#placed + 1] = st[3]
  end
  redis.call('SET', key, text(st) .. ';' .. marker .. ';' .. text(base) .. ';' .. text(committed), 'PX', ttl)
  out[i] = placed
end
return out`;

/** A key as stored: 27 characters of SHA-1, whatever the length of the client's address and agent. */
function redisKey(key: string): string {
  return createHash('sha1').update(key).digest('base64url');
}

export class RedisSessions {
  private readonly client: Redis;
  private readonly prefix: string;
  private readonly gapMs: number;
  private readonly ttlMs: number;
  private readonly instance: string;
  private readonly epochs: Epochs;
  private readonly logger: Logger;
  private readonly signal: AbortSignal;

  constructor(init: {
    client: Redis;
    prefix: string;
    gapMs: number;
    boundMs: number;
    instance: string;
    epochs: Epochs;
    logger: Logger;
    signal: AbortSignal;
  }) {
    this.client = init.client;
    this.prefix = init.prefix;
    this.gapMs = init.gapMs;
    this.ttlMs = init.gapMs + init.boundMs + 60_000;
    this.instance = init.instance;
    this.epochs = init.epochs;
    this.logger = init.logger;
    this.signal = init.signal;
  }

  /**
   * The session start and sequence number of each placement, in order. Waits out a Redis outage (retried with
   * backoff, a warning each time): the batch, and through credit the sources, wait with it.
   */
  place(placements: readonly Placement[], snapshot: number, batch: number): Promise<Array<[number, number]>> {
    return retry(() => this.roundTrip(placements, snapshot, batch), {
      policy: { max_attempts: Number.POSITIVE_INFINITY, initial_backoff_ms: 100, max_backoff_ms: 5000 },
      signal: this.signal,
      retriable: () => true,
      onRetry: (error) => this.logger.warn(`sessionize: Redis failed, retrying: ${errorMessage(error)}`),
    });
  }

  private async roundTrip(
    placements: readonly Placement[],
    snapshot: number,
    batch: number,
  ): Promise<Array<[number, number]>> {
    // A key's records in arrival order, and where each placement's answer is.
    const byKey = new Map<string, number[]>();
    for (let i = 0; i < placements.length; i++) {
      const { key } = placements[i] as Placement;
      const list = byKey.get(key);
      if (list) list.push(i);
      else byKey.set(key, [i]);
    }
    const keys = [...byKey.keys()];
    const marker = formatMarker({ instance: this.instance, epoch: this.epochs.current, snapshot, batch });
    const [, , snapshotText, batchText] = marker.split('|') as [string, string, string, string];
    const common = [
      String(this.gapMs),
      String(this.ttlMs),
      this.instance,
      this.epochs.current,
      snapshotText,
      batchText,
      String(this.epochs.lastCommitted(this.epochs.current) ?? 0),
      this.epochs.encodeEarlier(),
    ];
    const pipeline = this.client.pipeline();
    for (let at = 0; at < keys.length; at += CHUNK) {
      const chunk = keys.slice(at, at + CHUNK);
      const times = chunk.map((key) =>
        (byKey.get(key) as number[]).map((i) => (placements[i] as Placement).time).join(','),
      );
      pipeline.eval(PLACE, chunk.length, ...chunk.map((key) => this.prefix + redisKey(key)), ...common, ...times);
    }
    const replies = (await pipeline.exec()) ?? [];
    const answers = new Array<[number, number]>(placements.length);
    let k = 0;
    for (const [error, reply] of replies) {
      if (error) throw error;
      for (const placed of reply as number[][]) {
        const indices = byKey.get(keys[k++] as string) as number[];
        indices.forEach((index, j) => {
          answers[index] = [Number(placed[2 * j]), Number(placed[2 * j + 1])];
        });
      }
    }
    return answers;
  }
}
