/**
 * The RxJS operator every transform and sink stage runs in: takes envelopes in order, runs the handler on
 * at most `maxInFlight` of them at once (1: a stage's async work never overlaps itself), emits what each
 * returns in input order, releases an input's delivery only after its outputs were handed on, and flushes
 * once its inputs are complete.
 *
 * It is concatMap (or mergeMap with ordered results) with three differences that matter here: synchronous
 * handlers take no detour through an inner observable (the common case), the release happens after emission
 * (acks must not run ahead of the records), and completion waits for `finish`.
 */
// Not the package's index, which loads all of RxJS (see run.ts).
import { Observable } from 'rxjs/internal/Observable';
import type { OperatorFunction } from 'rxjs/internal/types';
import type { Envelope, PortEnvelope } from './envelope.ts';

export type StageHandler = (envelope: Envelope) => PortEnvelope[] | Promise<PortEnvelope[]>;

/** An envelope handed to the handler, and what it returned once it has. */
interface Running {
  readonly envelope: Envelope;
  outputs: PortEnvelope[] | undefined;
}

export function stageOperator(
  handle: StageHandler,
  finish: () => Promise<PortEnvelope[]>,
  maxInFlight = 1,
): OperatorFunction<Envelope, PortEnvelope> {
  return (input$) =>
    new Observable<PortEnvelope>((subscriber) => {
      const queue: Envelope[] = [];
      let head = 0;
      /** Handed to the handler and not emitted yet, oldest first: results leave in this order. */
      const running: Running[] = [];
      let pending = 0;
      let inputDone = false;
      let closed = false;

      const fail = (error: unknown) => {
        if (closed) return;
        closed = true;
        subscriber.error(error);
      };

      // RxJS reports errors thrown inside `next` asynchronously instead of propagating them; a throw
      // here (a bug in delivery accounting) must fail the stage, not leave a batch unacknowledged.
      const emit = (envelope: Envelope, outputs: PortEnvelope[]): boolean => {
        try {
          for (let i = 0; i < outputs.length; i++) subscriber.next(outputs[i] as PortEnvelope);
          if (envelope.edge !== undefined) envelope.edge.done++;
          envelope.delivery.release();
          return true;
        } catch (error) {
          fail(error);
          return false;
        }
      };

      /** Emits the finished results at the head of the window, in order. */
      const drain = (): boolean => {
        while (running.length > 0 && (running[0] as Running).outputs !== undefined) {
          const done = running.shift() as Running;
          if (!emit(done.envelope, done.outputs as PortEnvelope[])) return false;
        }
        return true;
      };

      const pump = (): void => {
        while (!closed && pending < maxInFlight && head < queue.length) {
          const envelope = queue[head] as Envelope;
          queue[head++] = undefined as unknown as Envelope;
          if (head > 64 && head * 2 > queue.length) {
            queue.splice(0, head);
            head = 0;
          }
          let result: PortEnvelope[] | Promise<PortEnvelope[]>;
          try {
            result = handle(envelope);
          } catch (error) {
            fail(error);
            return;
          }
          if (Array.isArray(result)) {
            // Nothing ahead of it: out at once, without a slot (the common, synchronous case).
            if (running.length === 0) {
              if (!emit(envelope, result)) return;
            } else {
              running.push({ envelope, outputs: result });
            }
            continue;
          }
          const slot: Running = { envelope, outputs: undefined };
          running.push(slot);
          pending++;
          result.then(
            (outputs) => {
              pending--;
              if (closed) return;
              slot.outputs = outputs;
              if (drain()) pump();
            },
            (error: unknown) => {
              pending--;
              fail(error);
            },
          );
        }
        if (!closed && pending === 0 && running.length === 0 && inputDone && head >= queue.length) {
          closed = true;
          finish().then(
            (outputs) => {
              for (const output of outputs) subscriber.next(output);
              subscriber.complete();
            },
            (error: unknown) => subscriber.error(error),
          );
        }
      };

      const subscription = input$.subscribe({
        next(envelope) {
          queue.push(envelope);
          pump();
        },
        error: fail,
        complete() {
          inputDone = true;
          pump();
        },
      });
      return () => {
        closed = true;
        subscription.unsubscribe();
      };
    });
}
