/**
 * When to send a refused request again: the server answers 503 (its pool exhausted, its engine starting) or
 * 429 with `Retry-After` when it refused the request before acting on it. So POST is retried too: nothing is
 * done twice. The exception is `sandbox_unavailable`, which also comes when the sandbox's runner went away
 * after it got the request: a POST refused with it is not sent again. A wait longer than what is left of the
 * budget is not waited for.
 */

export interface RetryPolicy {
  /** How often one call is sent again (default 3; 0: never). */
  maxRetries: number;
  /** All the waits of one call together, in milliseconds (default 10 000). */
  maxWaitMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxRetries: 3, maxWaitMs: 10_000 };

const RETRY_AFTER_STATUSES = new Set([429, 503]);
const MAYBE_DONE = new Set(['sandbox_unavailable']);

/** Whether a request refused with error `code` may be sent again: not a POST the sandbox may have done. */
export function mayResend(method: string, code: string | undefined): boolean {
  return method !== 'POST' || code === undefined || !MAYBE_DONE.has(code);
}

/** A `Retry-After` header's wait in milliseconds: delay-seconds or an HTTP date (`undefined`: neither). */
export function retryAfterMs(value: string, now = Date.now()): number | undefined {
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const when = Date.parse(text);
  return Number.isNaN(when) ? undefined : Math.max(0, when - now);
}

/** Milliseconds to wait before sending again, or `undefined` to throw the error now. */
export function retryDelayMs(
  policy: RetryPolicy,
  status: number,
  retryAfter: string | null,
  retries: number,
  waitedMs: number,
): number | undefined {
  if (!RETRY_AFTER_STATUSES.has(status) || retryAfter === null || retries >= policy.maxRetries) return undefined;
  const delay = retryAfterMs(retryAfter);
  if (delay === undefined || waitedMs + delay > policy.maxWaitMs) return undefined;
  return delay;
}
