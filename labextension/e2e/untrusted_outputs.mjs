// End to end in real headless Chromium: output of a sandboxed kernel cannot run script in the
// operator's JupyterLab page. tests/labextension/test_dashboard.py runs it.
//
// The attack is a human takeover: an agent drives a session's kernel through the API and leaves
// behind a function (a report, a data frame) that the operator will look at. The operator opens a
// console, then a notebook, on that kernel from JupyterLab's own Running panel and calls it. Every
// output that would run script records its name in window.__skPwned; the page must end with none,
// while the plot (PNG), the pandas table and sanitized HTML still show.
//
// Env: SANDKASTEN_URL (server root), SANDKASTEN_API_KEY, SANDKASTEN_ARTIFACTS (screenshots),
// CHROMIUM (default /usr/bin/chromium).
import { join } from 'node:path';
import { chromium } from 'playwright-core';

import { artifacts, base, jsonCaller, key, step } from './common.mjs';

const call = jsonCaller(base);

// What the agent runs in its kernel: `show()` emits one output per way HTML, SVG, Markdown or
// JavaScript could reach the page's script context, and returns an object whose _repr_html_
// does too (an execute_result). `mark(name)` is the script each one would run.
const AGENT_CODE = String.raw`
import io
import warnings
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import HTML, SVG, Image, Javascript, Markdown, display, update_display

warnings.filterwarnings("ignore")  # IPython suggests IFrame for the iframe below

def mark(name):
    return "(window.__skPwned = window.__skPwned || []).push('%s')" % name

class Report:
    def _repr_html_(self):
        return '<p>sk-repr</p><img src="sk-missing.png" onerror="%s">' % mark("repr_html")

def show():
    display(HTML("<p>sk-html</p><script>%s</script>" % mark("html_script")))
    display(HTML('<img src="sk-missing.png" onerror="%s">' % mark("html_img_onerror")))
    display(HTML('<svg onload="%s"><circle r="4"/></svg>' % mark("html_svg_onload")))
    display(HTML('<iframe srcdoc="<script>parent.eval(&quot;%s&quot;)</script>"></iframe>' % mark("html_iframe")))
    display(HTML('<details open ontoggle="%s">sk-details</details>' % mark("html_ontoggle")))
    display(SVG('<svg xmlns="http://www.w3.org/2000/svg" onload="%s"><script>%s</script>'
                '<rect width="4" height="4"/></svg>' % (mark("svg_onload"), mark("svg_script"))))
    display(Javascript(mark("javascript")))
    display(Markdown('sk-markdown <img src="sk-missing.png" onerror="%s">' % mark("markdown")))
    display(HTML("<p>sk-before-update</p>"), display_id="sk-update")
    update_display(HTML('<img src="sk-missing.png" onerror="%s">' % mark("update_display")), display_id="sk-update")
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([1, 3, 2, 4])
    png = io.BytesIO()
    fig.savefig(png, format="png")
    display(Image(png.getvalue()))
    display(pd.DataFrame({"sandbox": ["sk-table-a", "sk-table-b"], "value": [1, 2]}))
    return Report()

print("planted")
`;

/** Record any script the sandbox's outputs ran so far in the page, and forget it. */
async function checkNoScriptRan(page, what) {
  await page.waitForTimeout(1500); // time for any onerror/onload/script to fire
  await page.screenshot({ path: join(artifacts, `untrusted-outputs-${what}.png`) });
  const fired = await page.evaluate(() => window.__skPwned ?? []);
  if (fired.length > 0) {
    failures.push(`sandbox output ran script in the operator's page (${what}): ${fired.join(', ')}`);
    await page.evaluate(() => delete window.__skPwned);
  }
}

/** Wait for the `n`th run of show() in `widget` to be rendered whole; check the plot and table show. */
async function waitForShow(page, widget, n, what) {
  const outputs = widget.locator('.jp-OutputArea-output');
  // The table is the last display_data, then comes the Report's execute_result.
  await outputs.locator('table', { hasText: 'sk-table-b' }).nth(n - 1).waitFor();
  await outputs.filter({ hasText: 'sk-repr' }).nth(n - 1).waitFor();
  await outputs.filter({ hasText: 'sk-html' }).nth(n - 1).waitFor(); // HTML renders, sanitized
  const plot = await outputs.locator('img[src^="data:image/png"]').nth(n - 1).boundingBox();
  const table = await outputs.locator('table', { hasText: 'sk-table-a' }).nth(n - 1).isVisible();
  if (!table || !plot || plot.width < 50) {
    failures.push(`the table (${table}) or the plot (${JSON.stringify(plot)}) does not show (${what})`);
  }
}

/** The operator calls show() in the widget's input. */
async function runShow(page, input) {
  await input.click();
  await page.keyboard.type('show()');
  await page.keyboard.press('Shift+Enter');
}

async function palette(page, command) {
  await page.keyboard.press('Control+Shift+C');
  await page.keyboard.type(command);
  await page.keyboard.press('Enter');
}

/** Right-click the kernel in JupyterLab's Running panel and pick a menu item. */
async function openFromRunning(page, kernelId, label) {
  const running = page.locator('#jp-running-sessions');
  if (!(await running.isVisible())) {
    await page.locator('li[data-id="jp-running-sessions"]').click();
  }
  const item = running.locator(`[data-context="${kernelId}"]`).first();
  await item.waitFor();
  await item.click({ button: 'right' });
  await page.locator('.lm-Menu-item', { hasText: label }).click();
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage']
});
const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
page.setDefaultTimeout(60000);
let sessionId = null;
const failures = [];

try {
  step('an agent starts a session with a kernel and plants show() in it');
  const session = await call('POST', 'sandkasten/api/sessions', { with_kernel: true });
  sessionId = session.id;
  const kernelId = session.kernel?.id ?? (await call('GET', `sandkasten/api/sessions/${sessionId}`)).kernel.id;
  const planted = await call('POST', `sandkasten/api/sessions/${sessionId}/run_code`, {
    code: AGENT_CODE,
    timeout_ms: 60000
  });
  if (!planted.stdout.includes('planted')) {
    throw new Error(`the agent's code failed: ${JSON.stringify(planted)}`);
  }
  const kernel = (await call('GET', 'api/kernels')).find(k => k.id === kernelId);
  if (!kernel?.name.startsWith('sandkasten-')) {
    throw new Error(`the session's kernel is ${JSON.stringify(kernel)}, not a sandkasten kernel`);
  }

  step('the operator opens JupyterLab');
  await page.goto(`${base}/lab?reset&token=${key}`); // a fresh layout, not the last run's
  await page.locator('li[data-id="jp-running-sessions"]').waitFor({ timeout: 90000 });
  const news = page.locator('.jp-toast-button', { hasText: 'No' });
  if (await news.isVisible()) {
    await news.click();
  }

  step("a console on the agent's kernel: show() runs no script, the plot and table show");
  await openFromRunning(page, kernelId, 'New Console for Kernel');
  const consolePanel = page.locator('.jp-ConsolePanel:visible');
  await consolePanel.locator('.jp-CodeConsole-banner', { hasText: 'Python' }).waitFor();
  await runShow(page, consolePanel.locator('.jp-CodeConsole-promptCell .cm-content'));
  await waitForShow(page, consolePanel, 1, 'console');
  await checkNoScriptRan(page, 'console');

  step("the console shows the agent's own executions: they run no script either");
  await palette(page, 'Show All Kernel Activity');
  await call('POST', `sandkasten/api/sessions/${sessionId}/run_code`, { code: 'show()', timeout_ms: 60000 });
  await waitForShow(page, consolePanel, 2, "the agent's execution in the console");
  await checkNoScriptRan(page, 'console-foreign');

  step("a notebook on the agent's kernel: the same, even after \"Trust Notebook\"");
  await openFromRunning(page, kernelId, 'New Notebook for Kernel');
  const notebook = page.locator('.jp-NotebookPanel:visible');
  await notebook.locator('.jp-Toolbar', { hasText: 'Sandkasten' }).waitFor();
  await runShow(page, notebook.locator('.jp-Cell .cm-content').first());
  await waitForShow(page, notebook, 1, 'notebook');
  await checkNoScriptRan(page, 'notebook');
  await palette(page, 'Trust Notebook');
  await page.locator('.jp-Dialog button.jp-mod-accept').click();
  await checkNoScriptRan(page, 'notebook-trusted');

  step('the saved notebook is not signed: reopened, its outputs stay untrusted');
  await notebook.locator('.jp-Cell .cm-content').first().click();
  await page.keyboard.press('Control+s');
  const rename = page.locator('.jp-Dialog .jp-mod-accept'); // "Rename file" on the first save
  if (await rename.waitFor({ timeout: 5000 }).then(() => true, () => false)) {
    await rename.click();
  }
  await page.locator('.lm-DockPanel-tabBar .lm-TabBar-tab.jp-mod-dirty').waitFor({ state: 'detached' });
  const sessions = await call('GET', 'api/sessions');
  const path = sessions.find(s => s.kernel?.id === kernelId && s.type === 'notebook')?.path;
  const saved = await call('GET', `api/contents/${encodeURIComponent(path)}?content=1`);
  const withOutputs = saved.content.cells.filter(cell => cell.outputs?.length > 0);
  if (withOutputs.length === 0 || withOutputs.some(cell => cell.metadata.trusted !== false)) {
    failures.push(`the saved notebook trusts the sandbox's outputs: ${JSON.stringify(withOutputs.map(c => c.metadata))}`);
  }

  if (failures.length > 0) {
    throw new Error(failures.join('\n'));
  }
  step('passed');
} catch (error) {
  await page.screenshot({ path: join(artifacts, 'untrusted-outputs-failure.png') }).catch(() => undefined);
  console.error(error);
  process.exitCode = 1;
} finally {
  await browser.close();
  if (sessionId) {
    await call('DELETE', `sandkasten/api/sessions/${sessionId}`).catch(() => undefined);
  }
}
