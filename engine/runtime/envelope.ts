import type { EtlRecord } from '../record.ts';
import type { EdgeTelemetry, TraceParent } from '../telemetry/types.ts';
import type { Delivery } from './delivery.ts';

/** A batch on an edge: its records, the delivery it acknowledges into, and the upstream span. */
export interface Envelope {
  readonly records: EtlRecord[];
  readonly delivery: Delivery;
  readonly trace: TraceParent | undefined;
  /** A processing-time tick for the stage (no records): its transform's `tick` runs instead of `process`. */
  readonly tick?: true;
  /** When the source read the batch (epoch ms), for the freshness of what sinks commit; stamped once per batch. */
  readonly readAt?: number;
  /** The edge the batch came in on, counted done once the stage has processed it (backlog per edge). */
  readonly edge?: EdgeTelemetry;
}

/** An envelope leaving a stage on one of its ports. */
export interface PortEnvelope {
  readonly port: string;
  readonly envelope: Envelope;
}
