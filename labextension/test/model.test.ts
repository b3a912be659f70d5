// The dashboard's polling against a real `sandkasten serve`: every 2 s while started, nothing once stopped.
import { describe, expect, it } from 'vitest';
import { SandkastenApi } from '../src/api';
import { DashboardModel, REFRESH_MS } from '../src/model';

const base = process.env.SANDKASTEN_URL;
const key = process.env.SANDKASTEN_API_KEY;

function sleep(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms));
}

describe.runIf(base && key)('DashboardModel', () => {
  const api = new SandkastenApi((path, init) =>
    fetch(`${base}/sandkasten/api/${path}`, { ...init, headers: { Authorization: `token ${key}` } })
  );

  it('refreshes while started and stops when the panel is hidden', async () => {
    const model = new DashboardModel(api);
    let refreshes = 0;
    model.changed.connect(() => (refreshes += 1));
    model.start();
    await sleep(REFRESH_MS * 2 + 500);
    expect(refreshes).toBeGreaterThanOrEqual(2);
    expect(model.pool.data?.images['sandkasten/runtime:python']).toBeDefined();
    expect(model.sessions.error).toBeNull();
    model.stop();
    const stoppedAt = refreshes;
    await sleep(REFRESH_MS + 500);
    expect(refreshes).toBeLessThanOrEqual(stoppedAt + 1); // at most the refresh already under way
    model.dispose();
  });

  it('asks for the images only while they are watched', async () => {
    const asked: string[] = [];
    const counting = new SandkastenApi((path, init) => {
      asked.push(path);
      return fetch(`${base}/sandkasten/api/${path}`, { ...init, headers: { Authorization: `token ${key}` } });
    });
    const model = new DashboardModel(counting);
    await model.refresh();
    expect(asked).not.toContain('images');
    expect(model.images.data).toBeNull();
    model.watchImages(true);
    await model.refresh();
    expect(asked.filter(path => path === 'images').length).toBeGreaterThanOrEqual(1);
    expect(model.images.data?.images.map(image => image.name).slice(0, 3)).toEqual(['base', 'python', 'node']);
    model.watchImages(false);
    const before = asked.length;
    await model.refresh();
    expect(asked.slice(before)).not.toContain('images');
    model.dispose();
  });

  it('keeps the last data and shows the error when a part fails', async () => {
    let failing = false;
    // Once failing, the pool is asked with a wrong token: a real refusal from the real server.
    const flaky = new SandkastenApi((path, init) => {
      const token = failing && path.startsWith('pool') ? 'wrong' : key;
      return fetch(`${base}/sandkasten/api/${path}`, { ...init, headers: { Authorization: `token ${token}` } });
    });
    const model = new DashboardModel(flaky);
    await model.refresh();
    const pool = model.pool.data;
    failing = true;
    await model.refresh();
    expect(model.pool.data).toEqual(pool);
    expect(model.pool.error).toMatch(/token/);
    expect(model.sessions.error).toBeNull();
    model.dispose();
  });
});
