// The API wrapper against a real `sandkasten serve` (tests/labextension/test_dashboard.py passes its address).
import { describe, expect, it } from 'vitest';
import { ApiError, SandkastenApi, errorOf } from '../src/api';

const base = process.env.SANDKASTEN_URL;
const key = process.env.SANDKASTEN_API_KEY;

function apiWith(token: string | undefined): SandkastenApi {
  return new SandkastenApi((path, init) =>
    fetch(`${base}/sandkasten/api/${path}`, {
      ...init,
      headers: { ...(init?.headers as Record<string, string>), ...(token ? { Authorization: `token ${token}` } : {}) }
    })
  );
}

/** A new session of the real server (made by plain fetch, not by the code under test); its id. */
async function newSession(): Promise<string> {
  const created = await fetch(`${base}/sandkasten/api/sessions`, {
    method: 'POST',
    headers: { Authorization: `token ${key}` },
    body: '{}'
  });
  return ((await created.json()) as { id: string }).id;
}

describe.runIf(base && key)('SandkastenApi against a real server', () => {
  const api = apiWith(key);

  it('lists sessions with their usage, and destroys one', async () => {
    const id = await newSession();
    const session = (await api.sessions()).find(s => s.id === id);
    expect(session?.usage?.memory_bytes).toBeGreaterThan(0);
    expect(session?.usage?.cpu_ns).toBeGreaterThan(0);
    await api.listFiles(id, '').then(entries => expect(Array.isArray(entries)).toBe(true));
    await api.destroySession(id);
    expect((await api.sessions()).map(s => s.id)).not.toContain(id);
  });

  it('reads the pool, workspaces, config and events', async () => {
    const pool = await api.pool();
    expect(pool.images['sandkasten/runtime:python']?.history).toBeInstanceOf(Array);
    expect(await api.workspaces()).toBeInstanceOf(Array);
    const config = await api.config();
    expect(config.writable).toBe(true);
    expect(config.config.api_key).toBe('********');
    expect((await api.events(5)).length).toBeLessThanOrEqual(5);
  });

  it('pauses and resumes a session', async () => {
    const id = await newSession();
    expect((await api.pauseSession(id)).status).toBe('paused');
    expect((await api.sessions()).find(s => s.id === id)?.status).toBe('paused');
    expect((await api.resumeSession(id)).status).toBe('running');
    await api.destroySession(id);
  });

  it('lists the images and refuses to remove a built-in one', async () => {
    const { images, admin } = await api.images();
    expect(admin).toBe(true);
    const python = images.find(image => image.name === 'python');
    expect(python).toMatchObject({ kind: 'builtin', tag: 'sandkasten/runtime:python', kernel: true, allowed: true });
    const refused = await api.removeImage('python').catch((error: unknown) => error);
    expect((refused as ApiError).status).toBe(400);
    expect((refused as ApiError).message).toMatch(/built-in/);
    const unknown = await api.removeImage('never-added').catch((error: unknown) => error);
    expect((unknown as ApiError).status).toBe(404);
  });

  it("turns the server's errors into ApiErrors with its message", async () => {
    const refused = await api.destroySession('no-such-session').catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(ApiError);
    expect((refused as ApiError).status).toBe(404);
    expect((refused as ApiError).message).toMatch(/no-such-session/);
    const bad = await api.changeConfig({ quota: { max_sessions: -1 } }).catch((error: unknown) => error);
    expect((bad as ApiError).status).toBe(400);
    expect((bad as ApiError).message).toMatch(/max_sessions/);
    const anonymous = await apiWith(undefined).pool().catch((error: unknown) => error);
    expect((anonymous as ApiError).status).toBe(401);
  });

  it('says when the server cannot be reached', async () => {
    const nowhere = new SandkastenApi(() => fetch('http://127.0.0.1:9/'));
    await expect(nowhere.pool()).rejects.toMatchObject({ code: 'unreachable', status: 0 });
  });
});

describe('errorOf', () => {
  it('keeps a non-JSON body short and says the status', async () => {
    const error = await errorOf(new Response('<html>gateway down</html>', { status: 502, statusText: 'Bad Gateway' }));
    expect(error.message).toBe('HTTP 502: <html>gateway down</html>');
  });
});
