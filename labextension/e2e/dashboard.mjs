// End to end in real headless Chromium (Debian's, never a downloaded one): JupyterLab with the
// Sandkasten panel against a real `sandkasten serve`. tests/labextension/test_dashboard.py runs it.
//
// Env: SANDKASTEN_URL (server root), SANDKASTEN_API_KEY, PYTHON (an interpreter with the
// `sandkasten` SDK), SANDKASTEN_ARTIFACTS (where screenshots go), CHROMIUM (default /usr/bin/chromium),
// SANDKASTEN_ADDED_IMAGE (an image added to the server with `sandkasten images add`, which nothing uses).
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

import { artifacts, base, jsonCaller, key, step } from './common.mjs';

const api = jsonCaller(`${base}/sandkasten/api`);

const python = process.env.PYTHON ?? 'python3';
const PYTHON_IMAGE = 'sandkasten/runtime:python';
const ADDED_IMAGE = process.env.SANDKASTEN_ADDED_IMAGE;

async function widenSidebar(page, by) {
  const handle = page.locator('#jp-main-split-panel > .lm-SplitPanel-handle').first();
  const box = await handle.boundingBox();
  if (box) {
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + by, box.y + box.height / 2, { steps: 5 });
    await page.mouse.up();
  }
}

function createSessionWithTheSdk() {
  const code = [
    'import os',
    'from sandkasten import SyncSandboxClient',
    'client = SyncSandboxClient(base_url=os.environ["SANDKASTEN_URL"], api_key=os.environ["SANDKASTEN_API_KEY"])',
    'print(client.create_session().id)'
  ].join('\n');
  return execFileSync(python, ['-c', code], { encoding: 'utf-8' }).trim();
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage']
});
const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
page.setDefaultTimeout(30000);
const terminalOutput = [];
page.on('websocket', socket => {
  if (socket.url().includes('/terminal')) {
    socket.on('framereceived', frame => terminalOutput.push(String(frame.payload)));
  }
});
const pageErrors = [];
page.on('pageerror', error => pageErrors.push(String(error)));

try {
  step("open the server's root URL: JupyterLab, with the Sandkasten panel open");
  await page.goto(`${base}/?token=${key}`);
  const panel = page.locator('#sandkasten-dashboard');
  await panel.waitFor({ state: 'visible', timeout: 90000 });
  const landed = new URL(page.url());
  if (landed.pathname !== '/lab' || landed.searchParams.has('sandkasten')) {
    throw new Error(`the root URL led to ${page.url()}, not to /lab with the panel's query answered`);
  }
  await widenSidebar(page, 170); // room for the cards in the screenshots
  const news = page.locator('.jp-toast-button', { hasText: 'No' });
  if (await news.isVisible()) {
    await news.click(); // JupyterLab's "notify me about news?" toast
  }
  await panel.locator('text=No sessions.').or(panel.locator('.jp-Sandkasten-card').first()).waitFor();

  step('create a session through the Python SDK; it shows up in the panel');
  const sessionId = createSessionWithTheSdk();
  const card = panel.locator(`[data-session="${sessionId}"]`);
  await card.waitFor();
  await card.locator('.jp-Sandkasten-cpu', { hasText: '%' }).waitFor(); // a second reading gives CPU %

  step('open a terminal into it and run echo');
  await card.locator('[data-action="terminal"]').click();
  const terminal = page.locator('.jp-Sandkasten-terminal .jp-Terminal');
  await terminal.waitFor();
  await page.waitForFunction(() => document.querySelector('.jp-Sandkasten-terminal .xterm') !== null);
  await page.waitForTimeout(500); // bash prints its prompt
  await terminal.click();
  await page.keyboard.type('echo sk-e2e-$((6*7))\n', { delay: 10 });
  for (let i = 0; i < 100 && !terminalOutput.join('').includes('sk-e2e-42'); i++) {
    await page.waitForTimeout(100);
  }
  if (!terminalOutput.join('').includes('sk-e2e-42')) {
    throw new Error(`the terminal never printed sk-e2e-42: ${terminalOutput.join('').slice(-500)}`);
  }
  await page.waitForTimeout(300);
  await page.screenshot({ path: join(artifacts, 'dashboard-terminal.png') });

  step("browse the session's workspace files");
  const upload = await fetch(`${base}/sandkasten/api/sessions/${sessionId}/files/notes/hello.txt`, {
    method: 'PUT',
    headers: { Authorization: `token ${key}` },
    body: 'hello from the sandbox'
  });
  if (!upload.ok) {
    throw new Error(`writing a file failed: ${upload.status}`);
  }
  await card.locator('[data-action="files"]').click();
  const files = page.locator('.jp-Sandkasten-files:visible');
  await files.locator('button', { hasText: 'notes/' }).click();
  await files.locator('button', { hasText: 'hello.txt' }).click();
  await files.locator('.jp-Sandkasten-viewer pre', { hasText: 'hello from the sandbox' }).waitFor();
  await page.screenshot({ path: join(artifacts, 'dashboard-files.png') });

  step('pause the session from its card: a paused badge, then resume it');
  await card.locator('[data-action="pause"]').click();
  await card.locator('.jp-Sandkasten-status-paused', { hasText: 'paused' }).waitFor();
  if ((await api('GET', `sessions/${sessionId}`)).status !== 'paused') {
    throw new Error(`session ${sessionId} is not paused`);
  }
  if (!(await card.locator('[data-action="terminal"]').isDisabled())) {
    throw new Error('the terminal button of a paused session is enabled');
  }
  await page.screenshot({ path: join(artifacts, 'dashboard-paused.png') });
  await card.locator('[data-action="resume"]').click();
  await card.locator('.jp-Sandkasten-status-running').waitFor();
  if ((await api('GET', `sessions/${sessionId}`)).status !== 'running') {
    throw new Error(`session ${sessionId} did not resume`);
  }

  step('destroy the session from the panel');
  await card.locator('[data-action="destroy"]').click();
  await page.locator('.jp-Dialog button.jp-mod-warn').click();
  await card.waitFor({ state: 'detached' });
  const left = (await api('GET', 'sessions')).sessions.map(s => s.id);
  if (left.includes(sessionId)) {
    throw new Error(`session ${sessionId} is still there`);
  }

  step('edit the pool target in place, below it the schedule');
  await panel.locator('[data-tab="Pool"]').click();
  const schedule = panel.locator('.jp-Sandkasten-schedule');
  await schedule.locator('h4', { hasText: 'Schedule (UTC)' }).waitFor();
  await schedule.locator('p', { hasText: /^Now: python 1, since \w{3} 03:00 \(entry 0: 0 3 \* \* \*\)$/ }).waitFor();
  await schedule.locator('p', { hasText: /^Next: python 1, at \w{3} 03:00 \(entry 0: 0 3 \* \* \*\)$/ }).waitFor();
  const target = panel.locator(`tr[data-image="${PYTHON_IMAGE}"] input.jp-Sandkasten-target`);
  await target.fill('2');
  await target.press('Enter');
  for (let i = 0; i < 100; i++) {
    if ((await api('GET', 'pool')).images[PYTHON_IMAGE]?.target === 2) {
      break;
    }
    await page.waitForTimeout(100);
  }
  const pool = await api('GET', 'pool');
  if (pool.images[PYTHON_IMAGE]?.target !== 2) {
    throw new Error(`the pool target is ${JSON.stringify(pool.images[PYTHON_IMAGE])}, not 2`);
  }
  await panel.locator(`tr[data-image="${PYTHON_IMAGE}"] path[d^="M"]`).waitFor();
  await page.screenshot({ path: join(artifacts, 'dashboard-pool.png') });

  step('the images tab lists the built-in and added images; an admin removes an added one');
  await panel.locator('[data-tab="Images"]').click();
  for (const name of ['base', 'python', 'node', ADDED_IMAGE]) {
    await panel.locator(`tr[data-image-name="${name}"]`).waitFor();
  }
  await panel.locator('.jp-Sandkasten-hint', { hasText: 'sandkasten images add' }).waitFor();
  const python = panel.locator('tr[data-image-name="python"]');
  if ((await python.locator('button').count()) !== 0) {
    throw new Error('a built-in image has a Remove button');
  }
  await python.locator('.jp-Sandkasten-state-current').waitFor();
  const added = panel.locator(`tr[data-image-name="${ADDED_IMAGE}"]`);
  await added.locator('.jp-Sandkasten-sub', { hasText: 'added, on sandkasten/layers:base' }).waitFor();
  await page.screenshot({ path: join(artifacts, 'dashboard-images.png') });
  await added.locator('button', { hasText: 'Remove' }).click();
  await page.locator('.jp-Dialog', { hasText: ADDED_IMAGE }).locator('button.jp-mod-warn').click();
  await added.waitFor({ state: 'detached' });
  if ((await api('GET', 'images')).images.some(image => image.name === ADDED_IMAGE)) {
    throw new Error(`image ${ADDED_IMAGE} is still listed`);
  }

  step('delete a workspace, after a confirm dialog');
  const workspace = `e2e-ws-${Date.now()}`;
  const user = await api('POST', 'sessions', { workspace });
  await api('DELETE', `sessions/${user.id}`);
  await panel.locator('[data-tab="Workspaces"]').click();
  const row = panel.locator(`tr[data-workspace="${workspace}"]`);
  await row.locator('button', { hasText: 'Delete' }).click();
  await page.locator('.jp-Dialog', { hasText: workspace }).locator('button.jp-mod-warn').click();
  await row.waitFor({ state: 'detached' });
  if ((await api('GET', 'workspaces')).workspaces.some(w => w.name === workspace)) {
    throw new Error(`workspace ${workspace} is still there`);
  }

  step('the config tab shows sandkasten.yaml and marks a bad value inline');
  await panel.locator('[data-tab="Config"]').click();
  const yaml = panel.locator('textarea.jp-Sandkasten-yaml');
  await yaml.waitFor();
  const text = await yaml.inputValue();
  await yaml.fill(text.replace(/max_sessions: \d+/, 'max_sessions: -5'));
  await panel.locator('button', { hasText: 'Save' }).click();
  await panel.locator('.jp-Sandkasten-error', { hasText: 'max_sessions' }).waitFor();
  await page.screenshot({ path: join(artifacts, 'dashboard-config.png') });

  step('the dark theme reaches the panel');
  await page.keyboard.press('Control+Shift+C');
  await page.keyboard.type('JupyterLab Dark');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.body.dataset.jpThemeLight === 'false');
  await panel.locator('[data-tab="Events"]').click();
  await panel.locator('td', { hasText: 'created' }).first().waitFor();
  const background = await panel.evaluate(element => getComputedStyle(element).backgroundColor);
  const [r, g, b] = background.match(/\d+/g).map(Number);
  if (r + g + b > 3 * 100) {
    throw new Error(`the panel's background is ${background} in the dark theme`);
  }
  await page.screenshot({ path: join(artifacts, 'dashboard-dark.png') });

  if (pageErrors.length > 0) {
    throw new Error(`errors in the page: ${pageErrors.join('; ')}`);
  }
  step('passed');
} catch (error) {
  await page.screenshot({ path: join(artifacts, 'dashboard-failure.png') }).catch(() => undefined);
  console.error(error);
  process.exitCode = 1;
} finally {
  await browser.close();
}
