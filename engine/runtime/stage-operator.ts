/**
 * The RxJS operator every transform and sink stage runs in: takes envelopes one at a time, in order
 * (a stage's async work never overlaps itself), emits what the handler returns, releases the input's
 * delivery only after its outputs were handed on, and flushes once its inputs are complete.
 *
 * It is concatMap with three differences that matter here: synchronous handlers take no detour through
 * an inner observable (the common case), the release happens after emission (acks must not run ahead
 * of the records), and completion waits for `finish`.
 */
import { Observable, type OperatorFunction } from 'rxjs';
import type { Envelope, PortEnvelope } from './envelope.ts';

export type StageHandler = (envelope: Envelope) => PortEnvelope[] | Promise<PortEnvelope[]>;

export function stageOperator(
  handle: StageHandler,
  finish: () => Promise<PortEnvelope[]>,
): OperatorFunction<Envelope, PortEnvelope> {
  return (input$) =>
    new Observable<PortEnvelope>((subscriber) => {
      const queue: Envelope[] = [];
      let head = 0;
      let busy = false;
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
          envelope.delivery.release();
          return true;
        } catch (error) {
          fail(error);
          return false;
        }
      };

      const pump = (): void => {
        while (!busy && !closed && head < queue.length) {
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
            if (!emit(envelope, result)) return;
            continue;
          }
          busy = true;
          result.then(
            (outputs) => {
              busy = false;
              if (closed) return;
              if (emit(envelope, outputs)) pump();
            },
            (error: unknown) => {
              busy = false;
              fail(error);
            },
          );
          return;
        }
        if (!busy && !closed && inputDone && head >= queue.length) {
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
