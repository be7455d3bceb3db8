/**
 * Waiting on a condition that has no event a test can listen to (a daemon's state, a terminal's screen, an HTTP
 * endpoint coming up): it is checked again every few milliseconds until it holds, or the time is up.
 */

/** Resolves with `check`'s first truthy value; fails with the last value or error once `timeoutMs` have passed. */
export async function until<T>(check: () => T | Promise<T>, what: string, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
      last = value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${String(last)})`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
