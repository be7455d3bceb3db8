/**
 * Keyed state for driving a transform without the runtime: maps that outlive a transform instance, as the
 * runtime restores them after a restart, plus the stage's snapshot. `clone` is what a checkpoint holds now.
 */
import type { KeyedState } from '../../engine/operator.ts';

export class KeyedStore {
  readonly maps = new Map<string, Map<string, unknown>>();
  snapshot: unknown;

  /** For `OperatorContext.keyed`: the map of that name, made on first use. */
  keyed<V>(name: string): KeyedState<V> {
    let map = this.maps.get(name);
    if (!map) {
      map = new Map();
      this.maps.set(name, map);
    }
    return map as unknown as KeyedState<V>;
  }

  clone(): KeyedStore {
    const copy = new KeyedStore();
    for (const [name, map] of this.maps) copy.maps.set(name, new Map(structuredClone([...map])));
    copy.snapshot = structuredClone(this.snapshot);
    return copy;
  }
}
