/**
 * A session's /workspace, browsed through the API's files route: folders to
 * walk into, text files to read. The sandbox's files are not on the host, so
 * JupyterLab's own file browser cannot show them.
 */
import * as React from 'react';
import { ReactWidget } from '@jupyterlab/apputils';
import { FileEntry, SandkastenApi } from './api';
import { formatBytes } from './format';
import { ErrorNote } from './panel';

const MAX_VIEW_BYTES = 1 << 20;

export class WorkspaceFiles extends ReactWidget {
  constructor(
    private readonly api: SandkastenApi,
    private readonly sessionId: string
  ) {
    super();
    this.addClass('jp-Sandkasten-files');
  }

  render(): JSX.Element {
    return <Browser api={this.api} sessionId={this.sessionId} />;
  }
}

function Browser(props: { api: SandkastenApi; sessionId: string }): JSX.Element {
  const { api, sessionId } = props;
  const [folder, setFolder] = React.useState('');
  const [entries, setEntries] = React.useState<FileEntry[] | null>(null);
  const [opened, setOpened] = React.useState<{ path: string; text: string } | null>(null);
  const [error, setError] = React.useState<string | null>(null);

  React.useEffect(() => {
    setEntries(null);
    api.listFiles(sessionId, folder).then(
      list => {
        setEntries(list);
        setError(null);
      },
      (reason: Error) => setError(reason.message)
    );
  }, [api, sessionId, folder]);

  const open = (entry: FileEntry): void => {
    const path = folder ? `${folder}/${entry.name}` : entry.name;
    if (entry.type === 'directory') {
      setFolder(path);
      setOpened(null);
    } else if (entry.size > MAX_VIEW_BYTES) {
      setOpened({ path, text: `(${formatBytes(entry.size)}: too large to show here)` });
    } else {
      api.readText(sessionId, path).then(
        text => setOpened({ path, text }),
        (reason: Error) => setError(reason.message)
      );
    }
  };
  const crumbs = folder ? folder.split('/') : [];
  return (
    <div className="jp-Sandkasten-body">
      <div className="jp-Sandkasten-crumbs">
        <button className="jp-Sandkasten-link" onClick={() => setFolder('')}>
          /workspace
        </button>
        {crumbs.map((name, i) => (
          <React.Fragment key={i}>
            {' / '}
            <button className="jp-Sandkasten-link" onClick={() => setFolder(crumbs.slice(0, i + 1).join('/'))}>
              {name}
            </button>
          </React.Fragment>
        ))}
      </div>
      {error && <ErrorNote message={error} />}
      {entries === null ? (
        !error && <p className="jp-Sandkasten-empty">Loading…</p>
      ) : entries.length === 0 ? (
        <p className="jp-Sandkasten-empty">Empty folder.</p>
      ) : (
        <table className="jp-Sandkasten-table">
          <tbody>
            {entries.map(entry => (
              <tr key={entry.name}>
                <td>
                  <button className="jp-Sandkasten-link" onClick={() => open(entry)}>
                    {entry.name}
                    {entry.type === 'directory' ? '/' : ''}
                  </button>
                </td>
                <td>{entry.type === 'directory' ? '' : formatBytes(entry.size)}</td>
                <td>{new Date(entry.mtime * 1000).toLocaleString()}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {opened && (
        <div className="jp-Sandkasten-viewer">
          <h3>{opened.path}</h3>
          <pre>{opened.text}</pre>
        </div>
      )}
    </div>
  );
}
