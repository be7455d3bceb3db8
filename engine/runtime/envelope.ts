import type { EtlRecord } from '../record.ts';
import type { TraceParent } from '../telemetry/types.ts';
import type { Delivery } from './delivery.ts';

/** A batch on an edge: its records, the delivery it acknowledges into, and the upstream span. */
export interface Envelope {
  readonly records: EtlRecord[];
  readonly delivery: Delivery;
  readonly trace: TraceParent | undefined;
  /** A processing-time tick for the stage (no records): its transform's `tick` runs instead of `process`. */
  readonly tick?: true;
}

/** An envelope leaving a stage on one of its ports. */
export interface PortEnvelope {
  readonly port: string;
  readonly envelope: Envelope;
}
