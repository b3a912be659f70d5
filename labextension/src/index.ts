/**
 * The plugins: the Sandkasten panel in the left sidebar and the command palette,
 * and the commands it uses to open a terminal or the files of a sandbox; and
 * untrusted outputs for kernels in sandboxes (outputsPlugin.ts).
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, IThemeManager, MainAreaWidget } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { Terminal } from '@jupyterlab/terminal';
import { LabIcon } from '@jupyterlab/ui-components';
import { API_PATH, SandkastenApi } from './api';
import { WorkspaceFiles } from './files';
import { DashboardModel } from './model';
import { DashboardPanel } from './panel';
import { SandboxTerminalConnection } from './terminalConnection';
import { shortId } from './format';
import { outputsPlugin } from './outputsPlugin';

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
  '<path d="M3 17h18v3H3zM5 13l3-6 3 6zM13 13l2.5-5 2.5 5zM2 14h20v2H2z"/></g></svg>';

export const sandkastenIcon = new LabIcon({ name: 'sandkasten:icon', svgstr: ICON_SVG });

export const COMMANDS = {
  open: 'sandkasten:open-dashboard',
  terminal: 'sandkasten:open-terminal',
  files: 'sandkasten:open-files'
};

function apiFor(settings: ServerConnection.ISettings): SandkastenApi {
  return new SandkastenApi((path, init) =>
    ServerConnection.makeRequest(URLExt.join(settings.baseUrl, API_PATH, path), init ?? {}, settings)
  );
}

/** The query of `sandkasten serve`'s root URL (serve.py's DASHBOARD_QUERY). */
const DASHBOARD_QUERY = { name: 'sandkasten', value: 'dashboard' };

const plugin: JupyterFrontEndPlugin<void> = {
  id: '@sandkasten/labextension:dashboard',
  description: 'The Sandkasten dashboard: sessions, warm pool, workspaces, config, events, terminals into sandboxes',
  autoStart: true,
  optional: [ICommandPalette, ILayoutRestorer, IThemeManager],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    themes: IThemeManager | null
  ): void => {
    const settings = app.serviceManager.serverSettings;
    const api = apiFor(settings);
    const kernelNotebooks = new Map<string, string>();
    const sessions = app.serviceManager.sessions;
    const noteNotebooks = (): void => {
      kernelNotebooks.clear();
      for (const model of sessions.running()) {
        if (model.kernel) {
          kernelNotebooks.set(model.kernel.id, model.path);
        }
      }
    };
    sessions.runningChanged.connect(noteNotebooks);
    noteNotebooks();

    const panel = new DashboardPanel(new DashboardModel(api), {
      openTerminal: session => void app.commands.execute(COMMANDS.terminal, { sessionId: session.id }),
      openFiles: session => void app.commands.execute(COMMANDS.files, { sessionId: session.id }),
      notebookOf: kernelId => kernelNotebooks.get(kernelId) ?? null
    });
    panel.title.icon = sandkastenIcon;
    panel.title.caption = 'Sandkasten';
    app.shell.add(panel, 'left', { rank: 950 });
    restorer?.add(panel, panel.id);

    app.commands.addCommand(COMMANDS.open, {
      label: 'Sandkasten: Open Dashboard',
      execute: () => app.shell.activateById(panel.id)
    });
    // `sandkasten serve` sends its root URL here with ?sandkasten=dashboard: open the panel, once.
    void app.restored.then(() => {
      const url = new URL(window.location.href);
      if (url.searchParams.get(DASHBOARD_QUERY.name) === DASHBOARD_QUERY.value) {
        app.shell.activateById(panel.id);
        url.searchParams.delete(DASHBOARD_QUERY.name);
        window.history.replaceState(window.history.state, '', url.toString());
      }
    });
    // Terminals take the theme's colours when made; a theme change must reach the open ones.
    const terminals = new Set<Terminal>();
    themes?.themeChanged.connect(() => terminals.forEach(terminal => terminal.setOption('theme', 'inherit')));

    app.commands.addCommand(COMMANDS.terminal, {
      label: args => `Sandkasten: Terminal in ${shortId(String(args.sessionId ?? ''))}`,
      execute: async args => {
        const sessionId = String(args.sessionId);
        const connection = new SandboxTerminalConnection(sessionId, settings);
        const content = new Terminal(connection, { initialCommand: '' });
        const widget = new MainAreaWidget({ content });
        widget.id = `sandkasten-terminal-${sessionId}-${Date.now()}`;
        widget.title.label = `Sandbox ${shortId(sessionId)}`;
        widget.title.icon = sandkastenIcon;
        widget.title.closable = true;
        widget.addClass('jp-Sandkasten-terminal');
        terminals.add(content);
        widget.disposed.connect(() => {
          terminals.delete(content);
          connection.dispose();
        });
        app.shell.add(widget, 'main');
        app.shell.activateById(widget.id);
        return widget;
      }
    });
    app.commands.addCommand(COMMANDS.files, {
      label: args => `Sandkasten: Files of ${shortId(String(args.sessionId ?? ''))}`,
      execute: args => {
        const sessionId = String(args.sessionId);
        const widget = new MainAreaWidget({ content: new WorkspaceFiles(api, sessionId) });
        widget.id = `sandkasten-files-${sessionId}-${Date.now()}`;
        widget.title.label = `Files ${shortId(sessionId)}`;
        widget.title.icon = sandkastenIcon;
        widget.title.closable = true;
        app.shell.add(widget, 'main');
        return widget;
      }
    });
    palette?.addItem({ command: COMMANDS.open, category: 'Sandkasten' });
  }
};

export default [plugin, outputsPlugin];
