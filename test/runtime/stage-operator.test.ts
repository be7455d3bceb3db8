/**
 * The stage operator: whatever mix of synchronous and asynchronous results and whatever `maxInFlight`,
 * outputs leave in input order, each input is released once and only after its outputs, at most
 * `maxInFlight` calls overlap, and `finish` runs once, last.
 */
import fc from 'fast-check';
import { Subject } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { Delivery } from '../../engine/runtime/delivery.ts';
import type { Envelope, PortEnvelope } from '../../engine/runtime/envelope.ts';
import { stageOperator } from '../../engine/runtime/stage-operator.ts';

interface Step {
  /** Undefined: the handler answers synchronously; else after this many macrotask turns. */
  readonly delay: number | undefined;
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe('stage operator', () => {
  it('keeps order, releases after emitting, bounds concurrency (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ delay: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }) }), {
          maxLength: 30,
        }),
        fc.integer({ min: 1, max: 4 }),
        async (steps: Step[], maxInFlight) => {
          const events: string[] = [];
          let running = 0;
          let most = 0;
          const handle = (envelope: Envelope): PortEnvelope[] | Promise<PortEnvelope[]> => {
            const n = envelope.records[0]?.n as number;
            const out: PortEnvelope[] = [{ port: 'default', envelope: { ...envelope, records: [{ n }] } }];
            const delay = (steps[n] as Step).delay;
            if (delay === undefined) return out;
            running++;
            most = Math.max(most, running);
            return (async () => {
              for (let i = 0; i < delay; i++) await turn();
              running--;
              return out;
            })();
          };
          const input = new Subject<Envelope>();
          const finished = new Promise<void>((resolve, reject) => {
            input
              .pipe(
                stageOperator(
                  handle,
                  async () => {
                    events.push('finish');
                    return [];
                  },
                  maxInFlight,
                ),
              )
              .subscribe({
                next: (out) => events.push(`out ${out.envelope.records[0]?.n}`),
                error: reject,
                complete: resolve,
              });
          });
          steps.forEach((_, n) => {
            const delivery = new Delivery(() => events.push(`release ${n}`));
            delivery.retain(1);
            input.next({ records: [{ n }], delivery, trace: undefined });
          });
          input.complete();
          await finished;
          const expected = steps.flatMap((_, n) => [`out ${n}`, `release ${n}`]);
          expect(events).toEqual([...expected, 'finish']);
          expect(most).toBeLessThanOrEqual(maxInFlight);
          // Asynchronous calls do overlap up to the bound when there are enough of them.
          const asyncSteps = steps.filter((step) => step.delay !== undefined && step.delay > 0).length;
          if (asyncSteps >= maxInFlight && steps.every((step) => step.delay !== undefined && step.delay > 0)) {
            expect(most).toBe(maxInFlight);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
