// The instructor's table, end to end in real headless Chromium (Debian's, never a downloaded one), against a
// real `sandkasten serve` whose users come from the X-Test-User header (tests/labextension/users.py); the
// browser is the instructor, "teacher", an admin. tests/labextension/test_instructor.py runs it.
//
// First a classroom of 60 sessions (the listing answered by the page's route: 60 real sandboxes would not fit
// this machine): the table is the default, one listing per refresh and no request per row, rows that keep
// their places, a filter and a sort. Then real sessions of two students: both show, a filter hides the
// other's, a bulk cull of the filtered student's idle sessions ends those (checked through the REST API)
// and leaves the other's; a cancelled "End selected" ends nothing.
//
// Env: SANDKASTEN_URL (server root), SANDKASTEN_API_KEY, SANDKASTEN_ARTIFACTS (where screenshots go),
// CHROMIUM (default /usr/bin/chromium).
import { join } from 'node:path';
import { chromium } from 'playwright-core';

import { artifacts, base, jsonCaller, key, step } from './common.mjs';

const API = `${base}/sandkasten/api`;
const teacher = jsonCaller(API);
const as = user => jsonCaller(API, { 'X-Test-User': user });
const CLASS_SIZE = 60;
const STARTED = Date.now() / 1000 - 100;

function check(condition, message) {
  if (!condition) {
    throw new Error(message);
  }
}

/** The listing `GET sessions?usage=true` of a classroom of 60 sessions, at this moment. */
function classroom() {
  const now = Date.now() / 1000;
  const sessions = [];
  for (let i = 0; i < CLASS_SIZE; i++) {
    const owner = `student-${String((i % 20) + 1).padStart(2, '0')}`;
    const lastActivity = new Date((now - 900) * 1000).toISOString();
    const kernel =
      i % 3 === 0 ? { id: `kernel-${i}`, execution_state: 'idle', connections: 1, last_activity: lastActivity } : null;
    sessions.push({
      id: `class${String(i).padStart(2, '0')}-${'0'.repeat(20)}`,
      image: 'sandkasten/runtime:python',
      owner,
      workspace: null,
      status: i % 10 === 9 ? 'paused' : 'running',
      created_at: now - 3600 - i * 60,
      last_active: now - 600 - i * 30,
      limits: { memory_mb: 512 },
      network: false,
      egress: null,
      egress_refused: 0,
      warm: true,
      kernel_id: kernel?.id ?? null,
      kernel,
      usage: {
        pids: 4,
        memory_bytes: (40 + i) * 1024 * 1024,
        memory_limit_bytes: 512 * 1024 * 1024,
        cpu_ns: Math.round((now - STARTED) * 1e7 * ((i % 4) + 1)), // 1 to 4 % of a core
        sampled_at: now
      }
    });
  }
  return { sessions };
}

const isListing = url => url.pathname.endsWith('/sandkasten/api/sessions') && url.searchParams.get('usage') === 'true';
const answerClassroom = route =>
  route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(classroom()) });

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

/** Until the table has `count` rows. */
function rowCount(page, count) {
  return page.waitForFunction(n => document.querySelectorAll('.jp-Sandkasten-sessions tbody tr').length === n, count);
}

/** The rows' session ids, top to bottom, and the left edge of each column's header. */
async function layout(table) {
  return table.evaluate(element => ({
    rows: [...element.querySelectorAll('tbody tr')].map(row => row.dataset.session),
    columns: [...element.querySelectorAll('thead th')].map(th => Math.round(th.getBoundingClientRect().left)),
    height: Math.round(element.getBoundingClientRect().height)
  }));
}

// Two students' real sessions, made while the browser starts (alice's two, bob's one).
const made = (async () => {
  const alice = [(await as('alice')('POST', 'sessions', {})).id, (await as('alice')('POST', 'sessions', {})).id];
  const bob = (await as('bob')('POST', 'sessions', {})).id;
  return { alice, bob };
})();
made.catch(() => undefined); // awaited below; its failure is reported there

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage']
});
const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
page.setDefaultTimeout(30000);
const pageErrors = [];
page.on('pageerror', error => pageErrors.push(String(error)));
const apiRequests = [];
page.on('request', request => {
  const url = new URL(request.url());
  if (url.pathname.includes('/sandkasten/api/')) {
    const search = url.search.replace(/[?&]\d+$/, ''); // JupyterLab's cache-buster
    apiRequests.push({ at: Date.now(), path: url.pathname.split('/sandkasten/api/')[1] + search });
  }
});

try {
  step('a classroom of 60 sessions: the panel opens on the table');
  await page.route(isListing, answerClassroom);
  await page.goto(`${base}/?token=${key}`);
  const panel = page.locator('#sandkasten-dashboard');
  await panel.waitFor({ state: 'visible', timeout: 90000 });
  await widenSidebar(page, 700); // a table of ten columns
  const news = page.locator('.jp-toast-button', { hasText: 'No' });
  if (await news.isVisible()) {
    await news.click(); // JupyterLab's "notify me about news?" toast
  }
  const table = panel.locator('table.jp-Sandkasten-sessions');
  const rows = table.locator('tbody tr');
  await panel.locator('[data-view="table"][aria-pressed="true"]').waitFor();
  await table.waitFor();
  await rowCount(page, CLASS_SIZE);
  await panel.locator('.jp-Sandkasten-count', { hasText: `${CLASS_SIZE} sessions` }).waitFor();
  await rows.first().locator('.jp-Sandkasten-cpu', { hasText: '%' }).waitFor(); // a second reading gives CPU %

  step('one listing per refresh, no request per row; rows and columns keep their places');
  const first = await layout(table);
  const since = Date.now();
  await page.waitForTimeout(4500); // two refreshes or more
  const asked = apiRequests.filter(request => request.at >= since).map(request => request.path);
  const listings = asked.filter(path => path === 'sessions?usage=true').length;
  check(listings >= 2 && listings <= 3, `${listings} listings in 4.5 s: ${asked.join(', ')}`);
  const perRow = asked.filter(path => path.startsWith('sessions/'));
  check(perRow.length === 0, `requests per row on refresh: ${perRow.join(', ')}`);
  const second = await layout(table);
  check(second.rows.join() === first.rows.join(), 'the rows changed places between refreshes');
  check(second.height === first.height, `the table's height went from ${first.height} to ${second.height}`);
  const moved = second.columns.map((left, i) => Math.abs(left - first.columns[i]));
  check(Math.max(...moved) <= 2, `the columns moved between refreshes: ${first.columns} -> ${second.columns}`);
  await page.screenshot({ path: join(artifacts, 'instructor-classroom.png') });

  step('sort by idle time: the longest idle first, then the other way round');
  await table.locator('[data-sort="idle"]').click();
  await table.locator('th[aria-sort="descending"] [data-sort="idle"]').waitFor();
  check((await rows.first().getAttribute('data-session')).startsWith('class59'), 'the longest idle is not first');
  await table.locator('[data-sort="idle"]').click();
  await table.locator('th[aria-sort="ascending"] [data-sort="idle"]').waitFor();
  check((await rows.first().getAttribute('data-session')).startsWith('class00'), 'the least idle is not first');

  step("filter by one student: three rows, and 'End all of' names them");
  const filter = panel.locator('input.jp-Sandkasten-filter');
  const typed = Date.now();
  await filter.fill('student-07');
  await rowCount(page, 3);
  const filterMs = Date.now() - typed;
  check(filterMs < 1000, `the filter took ${filterMs} ms`);
  check(
    (await rows.evaluateAll(list => list.map(row => row.dataset.owner))).every(owner => owner === 'student-07'),
    'a row of another student passed the filter'
  );
  await panel.locator('[data-bulk="end-student"]', { hasText: 'End all of student-07' }).waitFor();
  await panel.locator('.jp-Sandkasten-count', { hasText: `3 of ${CLASS_SIZE} sessions` }).waitFor();
  await filter.fill('');
  await rowCount(page, CLASS_SIZE);

  step("the real sessions of two students: both show, in the table the panel started with");
  const { alice, bob } = await made;
  await page.unroute(isListing, answerClassroom);
  const all = [...alice, bob];
  for (const id of all) {
    await table.locator(`tr[data-session="${id}"]`).waitFor();
  }
  await rowCount(page, all.length);
  check((await table.locator('tr[data-owner="alice"]').count()) === 2, "alice's two sessions are not both shown");
  await table.locator(`tr[data-session="${bob}"] td.jp-Sandkasten-col-owner`, { hasText: 'bob' }).waitFor();

  step('sort by owner, descending: bob first');
  await table.locator('[data-sort="owner"]').click();
  await table.locator('th[aria-sort="ascending"] [data-sort="owner"]').waitFor();
  check((await rows.first().getAttribute('data-owner')) === 'alice', 'owner ascending does not start with alice');
  await table.locator('[data-sort="owner"]').click();
  await table.locator('th[aria-sort="descending"] [data-sort="owner"]').waitFor();
  check((await rows.first().getAttribute('data-owner')) === 'bob', 'owner descending does not start with bob');

  step("filter by alice: bob's row goes");
  await filter.fill('ali');
  await table.locator(`tr[data-session="${bob}"]`).waitFor({ state: 'detached' });
  check((await rows.count()) === 2, `${await rows.count()} rows for alice`);
  await panel.locator('.jp-Sandkasten-count', { hasText: '2 of 3 sessions' }).waitFor();
  await panel.locator('[data-bulk="end-student"]', { hasText: 'End all of alice' }).waitFor();

  step("cull the shown sessions idle for more than 0 minutes: alice's end, bob's stays");
  await panel.locator('input.jp-Sandkasten-minutes').fill('0');
  const cull = panel.locator('[data-bulk="cull"]', { hasText: 'Cull idle (2)' });
  await cull.click();
  const dialog = page.locator('.jp-Dialog', { hasText: "alice's 2 sessions" });
  await dialog.waitFor();
  await page.screenshot({ path: join(artifacts, 'instructor-cull-confirm.png') });
  await dialog.locator('button.jp-mod-warn').click();
  await panel.locator('.jp-Sandkasten-progress[data-done="true"]', { hasText: 'ended 2 of 2' }).waitFor();
  for (const id of alice) {
    await table.locator(`tr[data-session="${id}"]`).waitFor({ state: 'detached' });
  }
  const left = (await teacher('GET', 'sessions')).sessions.map(session => session.id);
  check(!alice.some(id => left.includes(id)), `alice's sessions are still there: ${left}`);
  check(left.includes(bob), `bob's session ${bob} was ended too: ${left}`);
  check((await as('alice')('GET', 'sessions')).sessions.length === 0, 'alice still sees sessions of hers');
  await page.screenshot({ path: join(artifacts, 'instructor-culled.png') });

  step("clear the filter: bob's session; 'End selected' cancelled ends nothing");
  await filter.fill('');
  await table.locator(`tr[data-session="${bob}"]`).waitFor();
  await panel.locator('.jp-Sandkasten-count', { hasText: /^1 session$/ }).waitFor();
  await table.locator('input[data-select="all"]').check();
  const endSelected = panel.locator('[data-bulk="end-selected"]', { hasText: 'End selected (1)' });
  await endSelected.click();
  await page.locator('.jp-Dialog', { hasText: 'bob' }).locator('button.jp-mod-reject').click();
  await page.locator('.jp-Dialog').waitFor({ state: 'detached' });
  await page.waitForTimeout(2500); // a refresh
  check((await teacher('GET', `sessions/${bob}`)).id === bob, "bob's session is gone");
  await table.locator(`tr[data-session="${bob}"].jp-mod-selected`).waitFor();

  step('cards and back: the choice is kept');
  await panel.locator('[data-view="cards"]').click();
  await panel.locator(`.jp-Sandkasten-card[data-session="${bob}"]`).waitFor();
  const kept = await page.evaluate(() => localStorage.getItem('sandkasten:sessions-view'));
  check(kept === 'cards', `the choice kept is ${kept}`);
  await panel.locator('[data-view="table"]').click();
  await table.locator(`tr[data-session="${bob}"]`).waitFor();
  await page.screenshot({ path: join(artifacts, 'instructor-table.png') });

  if (pageErrors.length > 0) {
    throw new Error(`errors in the page: ${pageErrors.join('; ')}`);
  }
  step('passed');
} catch (error) {
  await page.screenshot({ path: join(artifacts, 'instructor-failure.png') }).catch(() => undefined);
  console.error(error);
  process.exitCode = 1;
} finally {
  await browser.close();
}
