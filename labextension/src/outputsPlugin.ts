/**
 * The plugin that keeps a sandbox's output from running script in the operator's page.
 *
 * A person who opens a console or notebook on a kernel an agent drives (human
 * takeover) looks at output the sandbox chose. Rendered trusted, as JupyterLab
 * renders what a cell it ran prints, an `<img onerror>`, a `<script>` or an
 * `application/javascript` output would run in JupyterLab's page with the
 * person's cookie and XSRF token: the whole Jupyter API. Every notebook and
 * console whose kernel runs in a sandbox gets an OutputQuarantine, so its
 * outputs are rendered untrusted: HTML and Markdown sanitized, JavaScript and
 * SVG not run, while images and tables (pandas' HTML) show as before.
 */
import type { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import type { ICellModel } from '@jupyterlab/cells';
import type { ConsolePanel } from '@jupyterlab/console';
import { IConsoleTracker } from '@jupyterlab/console';
import type { NotebookPanel } from '@jupyterlab/notebook';
import { INotebookTracker } from '@jupyterlab/notebook';
import type { IObservableList } from '@jupyterlab/observables';
import { OutputQuarantine } from './quarantine';
import { isSandboxKernel } from './sandboxKernel';

type IsSandbox = OutputQuarantine.IOptions['isSandbox'];

function declaredKernel(panel: NotebookPanel): string | undefined {
  const spec: unknown = panel.content.model?.getMetadata('kernelspec');
  const name = typeof spec === 'object' && spec !== null ? (spec as { name?: unknown }).name : undefined;
  return typeof name === 'string' ? name : undefined;
}

export function watchNotebook(panel: NotebookPanel, isSandbox: IsSandbox): OutputQuarantine {
  const quarantine = new OutputQuarantine({
    sessionContext: panel.sessionContext,
    isSandbox,
    cells: () => panel.content.model?.cells ?? [],
    declaredKernel: () => declaredKernel(panel)
  });
  const admit = (_: unknown, change: IObservableList.IChangedArgs<ICellModel>): void =>
    change.newValues.forEach(cell => quarantine.admit(cell));
  let model = panel.content.model;
  model?.cells.changed.connect(admit);
  panel.content.modelChanged.connect(() => {
    model?.cells.changed.disconnect(admit);
    model = panel.content.model;
    model?.cells.changed.connect(admit);
    quarantine.check();
    for (const cell of model?.cells ?? []) {
      quarantine.admit(cell);
    }
  });
  void panel.context.ready.then(() => quarantine.check());
  panel.disposed.connect(() => quarantine.dispose());
  return quarantine;
}

export function watchConsole(panel: ConsolePanel, isSandbox: IsSandbox): OutputQuarantine {
  const codeConsole = panel.console;
  const quarantine = new OutputQuarantine({
    sessionContext: panel.sessionContext,
    isSandbox,
    cells: () => {
      const cells = Array.from(codeConsole.cells, cell => cell.model);
      return codeConsole.promptCell ? [...cells, codeConsole.promptCell.model] : cells;
    }
  });
  // Cells join a console as executed prompts, injected code, and other clients' executions.
  codeConsole.cells.changed.connect((_, change) => change.newValues.forEach(cell => quarantine.admit(cell.model)));
  codeConsole.promptCellCreated.connect((_, cell) => quarantine.admit(cell.model));
  panel.disposed.connect(() => quarantine.dispose());
  return quarantine;
}

export const outputsPlugin: JupyterFrontEndPlugin<void> = {
  id: '@sandkasten/labextension:untrusted-outputs',
  description:
    'Outputs of kernels that run in a Sandkasten sandbox are untrusted: HTML sanitized, scripts and handlers never run',
  autoStart: true,
  optional: [INotebookTracker, IConsoleTracker],
  activate: (app: JupyterFrontEnd, notebooks: INotebookTracker | null, consoles: IConsoleTracker | null): void => {
    const kernelspecs = app.serviceManager.kernelspecs;
    const isSandbox: IsSandbox = name => isSandboxKernel(name, kernelspecs.specs);
    const quarantines = new Set<OutputQuarantine>();
    const keep = (quarantine: OutputQuarantine, widget: NotebookPanel | ConsolePanel): void => {
      quarantines.add(quarantine);
      widget.disposed.connect(() => quarantines.delete(quarantine));
    };
    const onNotebook = (panel: NotebookPanel): void => keep(watchNotebook(panel, isSandbox), panel);
    const onConsole = (panel: ConsolePanel): void => keep(watchConsole(panel, isSandbox), panel);
    notebooks?.forEach(onNotebook);
    notebooks?.widgetAdded.connect((_, panel) => onNotebook(panel));
    consoles?.forEach(onConsole);
    consoles?.widgetAdded.connect((_, panel) => onConsole(panel));
    // A kernelspec named otherwise but run by the sandkasten provisioner is known once the specs load.
    kernelspecs.specsChanged.connect(() => quarantines.forEach(quarantine => quarantine.check()));
  }
};
