/**
 * What the `kafka` source knows of its partitions, apart from any client: which it owns and with which claim
 * epoch, the next offset of each (its position), the batches of each still waiting to be durable, and which were
 * revoked and are kept in the position only until their last batch is durable or abandoned. Pure: the source
 * feeds it the consumer group's assignments and its batches' outcomes; the tests do the same.
 */
import type { PartitionClaim, PartitionedPosition, PartitionPosition } from '../../../engine/operator.ts';

export interface TopicPartition {
  readonly topic: string;
  readonly partition: number;
}

export interface TopicPartitionOffset extends TopicPartition {
  /** The next offset to read, as Kafka's decimal string. */
  readonly offset: string;
}

interface PartitionState extends TopicPartition {
  readonly key: string;
  epoch: number;
  /** The next offset to read; undefined until claimed with a stored position or read from. */
  next: string | undefined;
  /** Batches emitted and not yet durable or abandoned. */
  inFlight: number;
  /** No longer assigned: kept until `inFlight` is 0, so its rows' positions are committed with them. */
  revoked: boolean;
}

/** The partition key every instance of a consumer group names a partition by (`PartitionedPosition`). */
export function partitionKey(group: string, topic: string, partition: number): string {
  return `kafka/${group}/${topic}/${partition}`;
}

/** The offset after `offset`. */
export function nextOffset(offset: string): string {
  return (BigInt(offset) + 1n).toString();
}

export class PartitionBook {
  private readonly group: string;
  private readonly states = new Map<string, PartitionState>();

  constructor(group: string) {
    this.group = group;
  }

  key(topic: string, partition: number): string {
    return partitionKey(this.group, topic, partition);
  }

  /**
   * A new assignment: the partitions it adds (to claim), and the keys it revokes that have no batch in flight,
   * dropped from the position at once (the others are dropped by `settled`).
   */
  assign(assignment: readonly TopicPartition[]): { added: TopicPartition[]; dropped: string[] } {
    const assigned = new Set(assignment.map((tp) => this.key(tp.topic, tp.partition)));
    const added: TopicPartition[] = [];
    for (const tp of assignment) {
      const key = this.key(tp.topic, tp.partition);
      const state = this.states.get(key);
      // Given back while its batches were still settling: claimed again, with a new epoch.
      if (state === undefined || state.revoked) added.push({ topic: tp.topic, partition: tp.partition });
    }
    const dropped: string[] = [];
    for (const [key, state] of this.states) {
      if (assigned.has(key)) continue;
      state.revoked = true;
      if (state.inFlight === 0) {
        this.states.delete(key);
        dropped.push(key);
      }
    }
    return { added, dropped };
  }

  /**
   * The claims of added partitions (or, without a store, epoch 0 and no position): each gets its epoch and the
   * stored position. Returns where the client must seek: partitions with a stored position.
   */
  claimed(
    partitions: readonly TopicPartition[],
    claims: readonly PartitionClaim[] | undefined,
  ): TopicPartitionOffset[] {
    const seeks: TopicPartitionOffset[] = [];
    for (const tp of partitions) {
      const key = this.key(tp.topic, tp.partition);
      const claim = claims?.find((c) => c.key === key);
      const position = typeof claim?.position === 'string' ? claim.position : undefined;
      const previous = this.states.get(key);
      this.states.set(key, {
        key,
        topic: tp.topic,
        partition: tp.partition,
        epoch: claim?.epoch ?? 0,
        next: position ?? (claims === undefined ? previous?.next : undefined),
        inFlight: previous?.inFlight ?? 0,
        revoked: false,
      });
      if (position !== undefined) seeks.push({ topic: tp.topic, partition: tp.partition, offset: position });
    }
    return seeks;
  }

  /** Whether the partition is owned now (assigned and claimed, not revoked). */
  owns(key: string): boolean {
    const state = this.states.get(key);
    return state !== undefined && !state.revoked;
  }

  /** The first offset worth emitting: messages below it are already stored (a fetch made before the seek). */
  nextOf(key: string): string | undefined {
    return this.states.get(key)?.next;
  }

  /** A batch of the partition ending at `lastOffset` is emitted. */
  read(key: string, lastOffset: string): void {
    const state = this.states.get(key);
    if (!state) throw new Error(`partition ${key} read without being assigned`);
    state.next = nextOffset(lastOffset);
    state.inFlight++;
  }

  /** A batch of the partition is durable or abandoned; true when that drops a revoked partition from the position. */
  settled(key: string): boolean {
    const state = this.states.get(key);
    if (!state) return false;
    state.inFlight--;
    if (state.revoked && state.inFlight === 0) {
      this.states.delete(key);
      return true;
    }
    return false;
  }

  /** The source's position: every partition with a known next offset, owned or still settling. */
  position(): PartitionedPosition {
    const partitions: Record<string, PartitionPosition> = {};
    for (const state of this.states.values()) {
      if (state.next !== undefined) partitions[state.key] = { epoch: state.epoch, position: state.next };
    }
    return { partitions };
  }

  /** The offsets to commit to Kafka for a committed position: those of partitions this instance still owns. */
  commits(committed: unknown): TopicPartitionOffset[] {
    const partitions = (committed as Partial<PartitionedPosition> | undefined)?.partitions;
    if (typeof partitions !== 'object' || partitions === null) return [];
    const out: TopicPartitionOffset[] = [];
    for (const [key, entry] of Object.entries(partitions)) {
      const state = this.states.get(key);
      if (!state || state.revoked || state.epoch !== entry.epoch || typeof entry.position !== 'string') continue;
      out.push({ topic: state.topic, partition: state.partition, offset: entry.position });
    }
    return out;
  }
}
