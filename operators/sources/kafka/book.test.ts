/** The kafka source's partition bookkeeping, as pure units: assignments, claims, positions, rebalances, commits. */
import { describe, expect, it } from 'vitest';
import { partitionEntries } from '../../../engine/operator.ts';
import { nextOffset, PartitionBook, partitionKey } from './book.ts';

const t0 = { topic: 'logs', partition: 0 };
const t1 = { topic: 'logs', partition: 1 };
const k0 = partitionKey('g', 'logs', 0);
const k1 = partitionKey('g', 'logs', 1);

describe('PartitionBook', () => {
  it('names partitions the same in every instance and counts offsets past 2^53', () => {
    expect(k0).toBe('kafka/g/logs/0');
    expect(nextOffset('9007199254740993')).toBe('9007199254740994');
  });

  it('resumes claimed partitions from the stored position and seeks only those that have one', () => {
    const book = new PartitionBook('g');
    const { added, dropped } = book.assign([t0, t1]);
    expect(added).toEqual([t0, t1]);
    expect(dropped).toEqual([]);
    const seeks = book.claimed(added, [
      { key: k0, epoch: 3, position: '120' },
      { key: k1, epoch: 1, position: undefined },
    ]);
    expect(seeks).toEqual([{ topic: 'logs', partition: 0, offset: '120' }]);
    expect(book.nextOf(k0)).toBe('120');
    expect(book.nextOf(k1)).toBeUndefined();
    // Only partitions with a known next offset are in the position, each with its claim's epoch.
    expect(book.position()).toEqual({ partitions: { [k0]: { epoch: 3, position: '120' } } });
    book.read(k1, '41');
    expect(book.position()).toEqual({
      partitions: { [k0]: { epoch: 3, position: '120' }, [k1]: { epoch: 1, position: '42' } },
    });
    // What a committing sink finds in the snapshot.
    expect(partitionEntries({ queue: book.position(), files: { offset: 3 } })).toEqual([
      { key: k0, epoch: 3, position: '120' },
      { key: k1, epoch: 1, position: '42' },
    ]);
  });

  it('without a store, keeps epoch 0 and lets the client start from the offsets committed in Kafka', () => {
    const book = new PartitionBook('g');
    const { added } = book.assign([t0]);
    expect(book.claimed(added, undefined)).toEqual([]);
    book.read(k0, '9');
    expect(book.position()).toEqual({ partitions: { [k0]: { epoch: 0, position: '10' } } });
  });

  it('drops a revoked partition at once when nothing of it is in flight', () => {
    const book = new PartitionBook('g');
    book.claimed(book.assign([t0, t1]).added, [
      { key: k0, epoch: 1, position: '5' },
      { key: k1, epoch: 1, position: '7' },
    ]);
    expect(book.assign([t0])).toEqual({ added: [], dropped: [k1] });
    expect(book.owns(k1)).toBe(false);
    expect(Object.keys(book.position().partitions)).toEqual([k0]);
  });

  it('keeps a revoked partition with batches in flight in the position until the last one settles', () => {
    const book = new PartitionBook('g');
    book.claimed(book.assign([t0, t1]).added, [
      { key: k0, epoch: 1, position: '0' },
      { key: k1, epoch: 1, position: '0' },
    ]);
    book.read(k1, '9');
    book.read(k1, '19');
    expect(book.assign([t0])).toEqual({ added: [], dropped: [] });
    // Revoked: no longer owned (its next batches are not emitted), but its position stays for the commit of its rows.
    expect(book.owns(k1)).toBe(false);
    expect(book.position().partitions[k1]).toEqual({ epoch: 1, position: '20' });
    expect(book.settled(k1)).toBe(false);
    expect(book.position().partitions[k1]).toBeDefined();
    expect(book.settled(k1)).toBe(true);
    expect(book.position().partitions[k1]).toBeUndefined();
    // A batch of an owned partition settling drops nothing.
    book.read(k0, '3');
    expect(book.settled(k0)).toBe(false);
  });

  it('claims a partition given back while it was settling again, with the new epoch', () => {
    const book = new PartitionBook('g');
    book.claimed(book.assign([t0]).added, [{ key: k0, epoch: 1, position: '0' }]);
    book.read(k0, '9');
    book.assign([]);
    const { added } = book.assign([t0]);
    expect(added).toEqual([t0]);
    book.claimed(added, [{ key: k0, epoch: 2, position: '10' }]);
    expect(book.owns(k0)).toBe(true);
    expect(book.position().partitions[k0]).toEqual({ epoch: 2, position: '10' });
    // The batch in flight from before still settles without dropping the partition.
    expect(book.settled(k0)).toBe(false);
    expect(book.owns(k0)).toBe(true);
  });

  it('commits to Kafka only offsets of partitions still owned under the epoch they were committed with', () => {
    const book = new PartitionBook('g');
    book.claimed(book.assign([t0, t1]).added, [
      { key: k0, epoch: 2, position: '0' },
      { key: k1, epoch: 2, position: '0' },
    ]);
    const committed = {
      partitions: {
        [k0]: { epoch: 2, position: '50' },
        [k1]: { epoch: 1, position: '30' },
        [partitionKey('g', 'other', 0)]: { epoch: 2, position: '8' },
      },
    };
    expect(book.commits(committed)).toEqual([{ topic: 'logs', partition: 0, offset: '50' }]);
    book.assign([t1]);
    expect(book.commits(committed)).toEqual([]);
    expect(book.commits(undefined)).toEqual([]);
    expect(book.commits({ offset: 3 })).toEqual([]);
  });
});
