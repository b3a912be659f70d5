// E2B's npm SDK, unmodified, against Sandkasten: E2B_API_URL, E2B_SANDBOX_URL and
// E2B_API_KEY come from the pytest run (tests/e2b/test_js.py).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CommandExitError, Sandbox } from 'e2b';

test('a sandbox: commands, files, metadata, kill', async () => {
  const sbx = await Sandbox.create({ metadata: { suite: 'e2b-js' }, envs: { GREETING: 'hi' } });
  try {
    const result = await sbx.commands.run('echo $GREETING; echo err >&2');
    assert.equal(result.stdout, 'hi\n');
    assert.equal(result.stderr, 'err\n');
    assert.equal(result.exitCode, 0);

    await assert.rejects(sbx.commands.run('exit 4'), (error) => error instanceof CommandExitError && error.exitCode === 4);

    // Output comes a moment after the start: the SDK takes the start event with an iterator of its own,
    // and once (CI, a loaded machine) a start and the output read in one piece lost the callbacks.
    const seen = [];
    const counted = await sbx.commands.run('sleep 0.2; for i in 1 2 3; do echo $i; done', {
      onStdout: (data) => seen.push(data),
    });
    assert.equal(counted.stdout, '1\n2\n3\n');
    assert.equal(seen.join(''), '1\n2\n3\n');

    const started = Date.now();
    const results = await Promise.all([0, 1, 2, 3, 4].map((i) => sbx.commands.run(`sleep 1; echo ${i}`)));
    assert.deepEqual(results.map((r) => r.stdout), ['0\n', '1\n', '2\n', '3\n', '4\n']);
    assert.ok(Date.now() - started < 4000, 'five commands did not run at once');

    const server = await sbx.commands.run('sleep 600', { background: true });
    assert.ok((await sbx.commands.list()).some((p) => p.pid === server.pid));
    assert.equal(await sbx.commands.kill(server.pid), true);

    const info = await sbx.getInfo();
    assert.deepEqual(info.metadata, { suite: 'e2b-js' });
    const listed = await Sandbox.list({ query: { metadata: { suite: 'e2b-js' } } }).nextItems();
    assert.deepEqual(listed.map((s) => s.sandboxId), [sbx.sandboxId]);
    assert.equal(await sbx.isRunning(), true);
  } finally {
    await sbx.kill();
  }
  assert.equal(await sbx.isRunning(), false);
});
