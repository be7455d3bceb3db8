import { EtlError, errorMessage, isRetriable } from './errors.ts';

export interface RetryPolicy {
  /** Attempts in all, the first included. `Infinity` retries until aborted. */
  max_attempts: number;
  initial_backoff_ms: number;
  max_backoff_ms: number;
}

export const DEFAULT_RETRY: RetryPolicy = { max_attempts: 5, initial_backoff_ms: 100, max_backoff_ms: 10_000 };

export interface RetryOptions {
  policy?: Partial<RetryPolicy>;
  signal?: AbortSignal;
  /** Called before each wait; for logs and metrics. */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  /** Overrides the default notion of which errors are worth retrying. */
  retriable?: (error: unknown) => boolean;
}

/** Full-jitter exponential backoff: uniform in [0, min(cap, base * 2^attempt)]. */
export function backoffDelay(attempt: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.max_backoff_ms, policy.initial_backoff_ms * 2 ** Math.min(attempt, 30));
  return Math.round(random() * ceiling);
}

/** The one retrier: retries retriable failures with backoff, never programmer errors. */
export async function retry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const policy: RetryPolicy = { ...DEFAULT_RETRY, ...options.policy };
  const retriable = options.retriable ?? isRetriable;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (error) {
      if (options.signal?.aborted) throw error;
      if (!retriable(error)) throw error;
      if (attempt >= policy.max_attempts) {
        throw new EtlError('ETL_RUN_RETRIES_EXHAUSTED', `gave up after ${attempt} attempts: ${errorMessage(error)}`, {
          cause: error,
        });
      }
      const delay = backoffDelay(attempt - 1, policy);
      options.onRetry?.(error, attempt, delay);
      await sleep(delay, options.signal);
    }
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
