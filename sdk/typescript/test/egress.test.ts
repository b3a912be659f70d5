// Domain policies without a server: what createSession sends for `network`, and what the session's info
// carries back (`egress`, `egress_refused`). A fake `fetch` answers as the server would.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { SandboxClient } from '../src/index.js';
import type { CreateSessionOptions, EgressPolicy, SessionInfo } from '../src/index.js';

function recording(): { client: SandboxClient; bodies: unknown[] } {
  const bodies: unknown[] = [];
  const fakeFetch = (async (_url: URL | RequestInfo, init?: RequestInit) => {
    const body = JSON.parse(String(init?.body)) as { network?: boolean | EgressPolicy };
    bodies.push(body);
    const network = body.network ?? false;
    const info: SessionInfo = {
      id: 's1',
      image: 'sandkasten/runtime:python',
      status: 'running',
      created_at: 1,
      last_active: 2,
      limits: {},
      network: network !== false,
      egress: typeof network === 'boolean' ? null : { allow: network.allow ?? [], deny: network.deny ?? [] },
      egress_refused: 2,
      owner: null,
      warm: false,
    };
    return new Response(JSON.stringify(info), { status: 201, headers: { 'Content-Type': 'application/json' } });
  }) as typeof fetch;
  return { client: new SandboxClient({ baseUrl: 'http://sk', apiKey: 'k', fetch: fakeFetch }), bodies };
}

test('createSession sends a domain policy as network, and the info has the policy in force', async () => {
  const { client, bodies } = recording();
  const policy: EgressPolicy = { allow: ['pypi.org', '*.pythonhosted.org'], deny: ['evil.pypi.org'] };
  const session = await client.createSession({ network: policy, ttl: 60 });
  assert.deepEqual(bodies, [{ network: policy, ttl_s: 60 }]);
  assert.equal(session.info.network, true);
  assert.deepEqual(session.info.egress, policy);
  assert.equal(session.info.egress_refused, 2);
});

test('network stays a boolean when asked as one, and is left out when not given', async () => {
  const { client, bodies } = recording();
  const options: CreateSessionOptions[] = [{ network: true }, { network: false }, {}, { network: { deny: ['*.example.org'] } }];
  for (const option of options) await client.createSession(option);
  assert.deepEqual(bodies, [{ network: true }, { network: false }, {}, { network: { deny: ['*.example.org'] } }]);
});
