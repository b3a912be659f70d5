// Against a real `sandkasten serve`: tests/sdk/test_typescript.py starts one and passes
// SANDKASTEN_URL and SANDKASTEN_API_KEY.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { test } from 'node:test';

import {
  AuthenticationError,
  BadRequestError,
  ConnectionError,
  ExecTimeout,
  NotFoundError,
  SandboxClient,
  SandkastenError,
} from '../src/index.js';

const baseUrl = process.env.SANDKASTEN_URL;
const apiKey = process.env.SANDKASTEN_API_KEY;
if (!baseUrl || !apiKey) throw new Error('set SANDKASTEN_URL and SANDKASTEN_API_KEY (a running sandkasten serve)');
const client = new SandboxClient({ baseUrl, apiKey });

test('the README snippet', async () => {
  const session = await client.createSession();
  try {
    const result = await session.exec('echo hello');
    assert.equal(result.output, 'hello\n');
    assert.equal(result.exit_code, 0);
  } finally {
    await session.destroy();
  }
});

test('sessions: create with options, get, list, destroy', async () => {
  const session = await client.createSession({
    image: 'base',
    env: { GREETING: 'hi' },
    limits: { memory_mb: 256 },
    ttl: 120,
    idleTimeout: 60,
    labels: { agent: 'a-1' },
  });
  assert.equal(session.info.image, 'sandkasten/runtime:base');
  assert.deepEqual(session.info.labels, { agent: 'a-1' });
  assert.equal(session.info.idle_timeout_s, 60);
  assert.equal((await client.getSession(session.id)).id, session.id);
  assert.ok((await client.listSessions()).some((s) => s.id === session.id));
  assert.equal((await session.exec('echo $GREETING')).output, 'hi\n');
  assert.equal((await session.refresh()).limits.memory_mb, 256);
  await session.destroy();
  await session.destroy(); // twice is fine
  await assert.rejects(client.getSession(session.id), NotFoundError);
});

test('exec: state, options, timeouts and streaming', async () => {
  const session = await client.createSession();
  try {
    await session.exec('cd /tmp && export A=1');
    assert.equal((await session.exec('pwd; echo $A')).output, '/tmp\n1\n');
    const piped = await session.exec('cat; echo $X', { stdin: 'in\n', env: { X: 'x' }, cwd: '/' });
    assert.equal(piped.output, 'in\nx\n');
    const timed = await session.exec('echo part; sleep 10', { timeoutMs: 400 });
    assert.ok(timed.timed_out);
    assert.equal(timed.output, 'part\n');
    await assert.rejects(session.exec('sleep 10', { timeoutMs: 300, raiseOnTimeout: true }), (error: unknown) => {
      assert.ok(error instanceof ExecTimeout && error.result.timed_out);
      return true;
    });

    const started = Date.now();
    const arrivals: [number, string][] = [];
    const stream = session.execStream('echo one; sleep 0.6; echo two');
    for await (const chunk of stream) arrivals.push([Date.now() - started, chunk]);
    assert.deepEqual(
      arrivals.map(([, chunk]) => chunk),
      ['one\n', 'two\n'],
    );
    assert.ok(arrivals[0]![0] < 500, `first chunk after ${arrivals[0]![0]} ms`);
    assert.equal(stream.result?.output, 'one\ntwo\n');
    assert.equal(stream.result?.exit_code, 0);
  } finally {
    await session.destroy();
  }
});

test('runCode: values, errors, rich output', async () => {
  const session = await client.createSession();
  try {
    const result = await session.runCode("x = 6\nprint('out')\nx * 7");
    assert.equal(result.stdout, 'out\n');
    assert.equal(result.results[0]?.data['text/plain'], '42');
    const failed = await session.runCode('1/0');
    assert.equal(failed.error?.ename, 'ZeroDivisionError');
    assert.equal(result.truncated, false);
  } finally {
    await session.destroy();
  }
});

test('runCode: output past maxOutput is dropped and the result says so', async () => {
  const session = await client.createSession();
  try {
    const result = await session.runCode("print('x' * 5000)", { maxOutput: 100 });
    assert.equal(result.stdout, 'x'.repeat(100));
    assert.equal(result.truncated, true);
    assert.equal(result.output_bytes, 5001);
  } finally {
    await session.destroy();
  }
});

test('pause and resume: calls refused while paused, state intact after', async () => {
  const session = await client.createSession();
  try {
    await session.exec('cd /tmp && export KEPT=yes');
    const paused = await session.pause();
    assert.equal(paused.status, 'paused');
    assert.equal(session.info.status, 'paused');
    assert.equal(typeof paused.paused_at, 'number');
    await assert.rejects(session.exec('true'), (error: unknown) => {
      assert.ok(error instanceof BadRequestError && error.status === 409 && error.code === 'session_paused');
      return true;
    });
    const resumed = await session.resume();
    assert.equal(resumed.status, 'running');
    assert.equal(resumed.paused_at, null);
    assert.equal((await session.exec('pwd; echo $KEPT')).output, '/tmp\nyes\n');
  } finally {
    await session.destroy();
  }
});

test('snapshots and forks: the files come back in new sessions, forks diverge', async () => {
  const name = `ts-snap-${process.pid}`;
  const session = await client.createSession();
  try {
    await session.exec('echo home > ~/.kept; echo 0.9 > score');
    const snapshot = await session.snapshot(name);
    assert.equal(snapshot.name, name);
    assert.equal(snapshot.source_session, session.id);
    assert.deepEqual(Object.keys(snapshot.parts).sort(), ['home', 'tmp', 'workspace']);
    assert.ok((await client.listSnapshots()).some((s) => s.name === name));
    assert.equal((await client.getSnapshot(name, { owner: '' })).created_at, snapshot.created_at);
    await assert.rejects(session.snapshot(name), (error: unknown) => {
      assert.ok(error instanceof BadRequestError && error.status === 409 && error.code === 'snapshot_exists');
      return true;
    });

    const copy = await client.createSession({ snapshot: name });
    try {
      assert.equal((await copy.exec('cat ~/.kept score')).output, 'home\n0.9\n');
    } finally {
      await copy.destroy();
    }

    const forks = await session.fork(2);
    try {
      assert.equal(new Set([session.id, ...forks.map((fork) => fork.id)]).size, 3);
      await Promise.all(forks.map((fork, i) => fork.write('score', String(i))));
      assert.deepEqual(await Promise.all(forks.map((fork) => fork.read('score'))), ['0', '1']);
      assert.equal(await session.read('score'), '0.9\n');
    } finally {
      await Promise.all(forks.map((fork) => fork.destroy()));
    }

    await client.deleteSnapshot(name);
    await assert.rejects(client.getSnapshot(name), NotFoundError);
    await assert.rejects(client.createSession({ snapshot: name }), NotFoundError);
  } finally {
    if ((await client.listSnapshots()).some((s) => s.name === name)) await client.deleteSnapshot(name);
    await session.destroy();
  }
});

test('files: write, read, list, remove', async () => {
  const session = await client.createSession();
  try {
    assert.equal(await session.write('dir/hello.txt', 'héllo'), 6);
    assert.equal(await session.read('dir/hello.txt'), 'héllo');
    const bytes = Uint8Array.from([0, 1, 2, 255]);
    await session.write('blob.bin', bytes, { mode: 0o600 });
    assert.deepEqual(await session.readBytes('blob.bin'), bytes);
    const entries = await session.list();
    assert.deepEqual(
      entries.map((e) => [e.name, e.type]),
      [
        ['blob.bin', 'file'],
        ['dir', 'directory'],
      ],
    );
    await assert.rejects(session.read('dir'), BadRequestError);
    await session.remove('dir', { recursive: true });
    await assert.rejects(session.read('dir/hello.txt'), NotFoundError);
  } finally {
    await session.destroy();
  }
});

test('workspaces and pool', async () => {
  const name = `ts-ws-${process.pid}`;
  const session = await client.createSession({ workspace: name });
  await session.write('kept.txt', 'kept');
  await session.destroy();
  assert.ok((await client.workspaces.list()).some((w) => w.name === name));
  await client.workspaces.delete(name);
  await assert.rejects(client.workspaces.delete(name), NotFoundError);
  const pool = await client.pool.status();
  assert.equal(pool.enabled, true);
});

test('typed errors', async () => {
  const wrong = new SandboxClient({ baseUrl: baseUrl!, apiKey: 'wrong' });
  await assert.rejects(wrong.listSessions(), (error: unknown) => {
    assert.ok(error instanceof AuthenticationError && error instanceof SandkastenError);
    assert.equal(error.status, 401);
    assert.equal(error.code, 'unauthorized');
    return true;
  });
  await assert.rejects(client.createSession({ limits: { cpus: 0.01 } }), (error: unknown) => {
    assert.ok(error instanceof BadRequestError && error.message.includes('limits.cpus'));
    return true;
  });
  await assert.rejects(client.getSession('nope'), NotFoundError);
});

test('connection errors: GET retried with backoff, POST not', async () => {
  const port = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
  const offline = new SandboxClient({ baseUrl: `http://127.0.0.1:${port}`, apiKey: 'x' });
  let started = Date.now();
  await assert.rejects(offline.listSessions(), ConnectionError);
  assert.ok(Date.now() - started >= 1600, `GET gave up after ${Date.now() - started} ms`);
  started = Date.now();
  await assert.rejects(offline.createSession(), ConnectionError);
  assert.ok(Date.now() - started < 1000);
});
