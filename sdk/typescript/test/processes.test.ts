// Processes beside the shell and streamed runCode, against a real `sandkasten serve` (tests/sdk/test_typescript.py
// starts one and passes SANDKASTEN_URL and SANDKASTEN_API_KEY).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { BadRequestError, ExecTimeout, NotFoundError, Process, SandboxClient } from '../src/index.js';
import type { ProcessEvent, RichResult, Session } from '../src/index.js';

const baseUrl = process.env.SANDKASTEN_URL;
const apiKey = process.env.SANDKASTEN_API_KEY;
if (!baseUrl || !apiKey) throw new Error('set SANDKASTEN_URL and SANDKASTEN_API_KEY (a running sandkasten serve)');
const client = new SandboxClient({ baseUrl, apiKey });

async function withSession(body: (session: Session) => Promise<void>): Promise<void> {
  const session = await client.createSession();
  try {
    await body(session);
  } finally {
    await session.destroy();
  }
}

/** What callbacks were called with, and when (ms since it was made). */
function arrivals() {
  const started = Date.now();
  const calls: [number, string, unknown][] = [];
  return {
    calls,
    on: (kind: string) => (value: unknown) => void calls.push([Date.now() - started, kind, value]),
    of: (kind: string) => calls.filter(([, k]) => k === kind).map(([, , value]) => value),
  };
}

test('exec with callbacks: a process, output as it comes, stdout and stderr apart', () =>
  withSession(async (session) => {
    const seen = arrivals();
    const result = await session.exec('echo one; echo oops >&2; sleep 1.5; echo two; exit 3', {
      onStdout: seen.on('out'),
      onStderr: seen.on('err'),
    });
    assert.deepEqual([result.stdout, result.stderr, result.exit_code], ['one\ntwo\n', 'oops\n', 3]);
    assert.deepEqual(seen.of('out'), ['one\n', 'two\n']);
    assert.deepEqual(seen.of('err'), ['oops\n']);
    assert.ok(seen.calls.at(-1)![0] - seen.calls[0]![0] > 1000, 'the first chunk came before the sleep');

    const fed = await session.exec('tr a-z A-Z', { stdin: 'piped\n', onStdout: async () => undefined });
    assert.equal(fed.stdout, 'PIPED\n');

    await assert.rejects(
      session.exec('echo before; sleep 30', { timeoutMs: 500, onStdout: () => undefined, raiseOnTimeout: true }),
      (error: unknown) => {
        assert.ok(error instanceof ExecTimeout && error.result.timed_out && error.result.output === 'before\n');
        return true;
      },
    );
  }));

test('a background process: stdin, wait, signals, kill, tags', () =>
  withSession(async (session) => {
    const started = await session.exec('echo ready; read line; echo got $line; echo warn >&2', {
      background: true,
      stdin: true,
    });
    assert.ok(started instanceof Process && started.info.running && started.info.stdin_open);
    assert.equal((await started.sendStdin('hello\n', { eof: true })).stdin_open, false);
    const result = await started.wait();
    assert.deepEqual([result.stdout, result.stderr, result.exit_code], ['ready\ngot hello\n', 'warn\n', 0]);
    await assert.rejects(started.sendStdin('more'), (error: unknown) => {
      assert.ok(error instanceof BadRequestError && error.status === 409 && error.code === 'stdin_closed');
      return true;
    });

    const trapped = await session.exec("trap 'echo bye; exit 7' TERM; echo up; while :; do sleep 0.05; done", {
      background: true,
    });
    const still = await trapped.wait({ timeoutMs: 2000 });
    assert.ok(still.process.running && still.exit_code === null && still.stdout === 'up\n');
    await trapped.signal('SIGTERM');
    assert.equal((await trapped.wait({ timeoutMs: 20_000 })).exit_code, 7);

    const forever = await session.exec('sleep 600', { background: true, tag: 'server' });
    await forever.kill();
    assert.equal((await forever.wait({ timeoutMs: 20_000 })).exit_code, -9);
    const listed = await session.processes();
    assert.equal(listed.find((p) => p.pid === forever.pid)?.info.tag, 'server');

    const bounded = await session.exec('sleep 30', { background: true, timeoutMs: 300 });
    assert.equal((await bounded.wait()).timed_out, true);
  }));

test('a background process with callbacks, followed again from a seq and by pid', () =>
  withSession(async (session) => {
    const seen = arrivals();
    const started = await session.exec('sleep 0.5; for i in 1 2 3; do echo $i; sleep 0.4; done; echo e >&2', {
      background: true,
      onStdout: seen.on('out'),
      onStderr: seen.on('err'),
    });
    assert.equal(seen.calls.length, 0);
    const result = await started.wait();
    assert.deepEqual(seen.of('out'), ['1\n', '2\n', '3\n']);
    assert.deepEqual(seen.of('err'), ['e\n']);
    assert.equal(result.stdout, '1\n2\n3\n');

    const events: ProcessEvent[] = [];
    for await (const event of started) events.push(event);
    const outputs = events.filter((e) => e.type === 'output');
    assert.deepEqual(
      outputs.map((e) => e.data),
      ['1\n', '2\n', '3\n', 'e\n'],
    );
    assert.equal(events.at(-1)?.type, 'exit');
    const later: ProcessEvent[] = [];
    for await (const event of started.events({ after: outputs[1]!.seq })) later.push(event);
    assert.deepEqual(
      later.filter((e) => e.type === 'output').map((e) => e.data),
      ['3\n', 'e\n'],
    );

    const found = await session.process(started.pid);
    assert.equal(found.info.exit_code, 0);
    const followed = await found.follow({ after: outputs[1]!.seq });
    assert.deepEqual([followed.stdout, followed.stderr], ['3\n', 'e\n']);
    await assert.rejects(session.process(999_999), NotFoundError);
  }));

test('exec beside a busy shell with ifBusy', () =>
  withSession(async (session) => {
    const busy = session.exec('sleep 2; echo slow');
    await new Promise((resolve) => setTimeout(resolve, 500));
    const beside = await session.exec('echo beside; pwd', { ifBusy: 'process', cwd: '/tmp' });
    assert.deepEqual([beside.output, beside.ran_as], ['beside\n/tmp\n', 'process']);
    await assert.rejects(session.exec('echo refused'), (error: unknown) => {
      assert.ok(error instanceof BadRequestError && error.code === 'shell_busy');
      return true;
    });
    assert.equal((await busy).ran_as, 'shell');
  }));

test('runCode with callbacks: outputs as they come', () =>
  withSession(async (session) => {
    const seen = arrivals();
    const code = "import sys, time\nprint('first', flush=True)\ntime.sleep(1.2)\nprint('warn', file=sys.stderr)\n6 * 7";
    const result = await session.runCode(code, {
      onStdout: seen.on('out'),
      onStderr: seen.on('err'),
      onResult: seen.on('result'),
    });
    assert.deepEqual(seen.of('out'), ['first\n']);
    assert.deepEqual(seen.of('err'), ['warn\n']);
    assert.equal((seen.of('result') as RichResult[])[0]?.data['text/plain'], '42');
    assert.ok(seen.calls[1]![0] - seen.calls[0]![0] > 800, 'first came before the sleep ended');
    assert.equal(result.stdout, 'first\n');

    const errors: string[] = [];
    const failed = await session.runCode('1/0', { onError: (error) => void errors.push(error.ename) });
    assert.deepEqual(errors, ['ZeroDivisionError']);
    assert.equal(failed.error?.ename, 'ZeroDivisionError');
  }));
