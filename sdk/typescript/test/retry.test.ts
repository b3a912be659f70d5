// Retry-After: the policy itself, and (when tests/sdk/test_typescript.py passes SANDKASTEN_TIGHT_URL, a server
// with one cold start at a time and no pool) a real refusal sent again.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { SandboxClient, ServerError } from '../src/index.js';
import { DEFAULT_RETRY, mayResend, retryAfterMs, retryDelayMs } from '../src/retry.js';

test('the retry policy: 503 and 429 with Retry-After, within the count and the budget', () => {
  const policy = { maxRetries: 2, maxWaitMs: 5000 };
  assert.equal(retryDelayMs(policy, 503, '1', 0, 0), 1000);
  assert.equal(retryDelayMs(policy, 429, '2', 1, 1000), 2000);
  assert.equal(retryDelayMs(policy, 503, '1', 2, 2000), undefined); // retried as often as allowed
  assert.equal(retryDelayMs(policy, 503, '3', 1, 3000), undefined); // past the budget
  assert.equal(retryDelayMs(policy, 503, null, 0, 0), undefined); // the server did not ask
  assert.equal(retryDelayMs(policy, 500, '1', 0, 0), undefined); // only refusals before acting
  assert.equal(retryDelayMs(policy, 503, 'soon', 0, 0), undefined);
  const now = Date.now();
  assert.equal(retryAfterMs(new Date(now + 2000).toUTCString(), now), 2000 - (now % 1000));
  assert.equal(retryAfterMs(new Date(now - 60_000).toUTCString(), now), 0);
  assert.deepEqual(DEFAULT_RETRY, { maxRetries: 3, maxWaitMs: 10_000 });
  // A runner that went away mid-call may have done a POST: that one is not sent again, the rest are.
  assert.ok(!mayResend('POST', 'sandbox_unavailable') && mayResend('GET', 'sandbox_unavailable'));
  assert.ok(mayResend('POST', 'pool_exhausted') && mayResend('PUT', 'sandbox_unavailable'));
});

const tightUrl = process.env.SANDKASTEN_TIGHT_URL;
const tightKey = process.env.SANDKASTEN_TIGHT_API_KEY;

const skip = !tightUrl && 'no SANDKASTEN_TIGHT_URL';

test('a refused cold start is sent again after Retry-After', { skip }, async () => {
  const patient = new SandboxClient({ baseUrl: tightUrl!, apiKey: tightKey! });
  const started = Date.now();
  const sessions = await Promise.all([patient.createSession(), patient.createSession()]);
  assert.ok(Date.now() - started >= 1000, 'one of them waited as the server asked');
  await Promise.all(sessions.map((session) => session.destroy()));

  const impatient = new SandboxClient({ baseUrl: tightUrl!, apiKey: tightKey!, maxRetries: 0 });
  const outcomes = await Promise.allSettled([impatient.createSession(), impatient.createSession()]);
  try {
    const refused = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult | undefined;
    const reason: unknown = refused?.reason;
    assert.ok(reason instanceof ServerError && reason.code === 'pool_exhausted', String(reason));
  } finally {
    for (const outcome of outcomes) if (outcome.status === 'fulfilled') await outcome.value.destroy();
  }
});
