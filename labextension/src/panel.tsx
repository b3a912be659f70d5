/**
 * The "Sandkasten" panel: sessions, pool, images, workspaces, config and events in tabs.
 * It refreshes while visible and stops while hidden (onAfterShow / onAfterHide).
 */
import * as React from 'react';
import { Dialog, ReactWidget, showDialog, UseSignal } from '@jupyterlab/apputils';
import { Message } from '@lumino/messaging';
import { DashboardModel, Part } from './model';
import { ConfigEditor } from './configEditor';
import { ImageInfo, Pool, Session, Workspace } from './api';
import { sparklinePath } from './sparkline';
import { SessionsView, defaultView, toRows } from './sessionRows';
import { SessionTable, SetTableState, TableState, initialTableState } from './sessionTable';
import {
  formatBytes,
  formatDuration,
  formatMemory,
  formatPercent,
  imageName,
  memoryFraction,
  networkSummary,
  scheduleLines,
  secondsSince,
  shortId
} from './format';

/** What the panel's buttons do outside the panel. */
export interface PanelActions {
  openTerminal(session: Session): void;
  openFiles(session: Session): void;
  /** The notebook a kernel belongs to, if JupyterLab has one open on it. */
  notebookOf(kernelId: string): string | null;
}

const TABS = ['Sessions', 'Pool', 'Images', 'Workspaces', 'Config', 'Events'] as const;
type Tab = (typeof TABS)[number];
const SPARK_WINDOW_S = 600;
/** Where the user's choice of cards or table is kept (per browser). */
const VIEW_KEY = 'sandkasten:sessions-view';

function storedView(): SessionsView | null {
  try {
    const view = window.localStorage.getItem(VIEW_KEY);
    return view === 'cards' || view === 'table' ? view : null;
  } catch {
    return null; // storage off: the default by count
  }
}

function storeView(view: SessionsView): void {
  try {
    window.localStorage.setItem(VIEW_KEY, view);
  } catch {
    // storage off: the choice lasts while the page does
  }
}

/** The Sessions tab's view and table, kept by the panel so a refresh or another tab loses neither. */
interface SessionsUi {
  chosen: SessionsView | null;
  /** Without a choice, the view the first listing called for; kept, so the view never flips as sessions come and go. */
  auto: React.MutableRefObject<SessionsView | null>;
  choose: (view: SessionsView) => void;
  table: TableState;
  setTable: SetTableState;
}

export class DashboardPanel extends ReactWidget {
  constructor(
    readonly model: DashboardModel,
    private readonly actions: PanelActions
  ) {
    super();
    this.id = 'sandkasten-dashboard';
    this.addClass('jp-Sandkasten');
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.model.start();
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this.model.stop();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (this.isVisible) {
      this.model.start();
    }
  }

  protected onBeforeDetach(msg: Message): void {
    this.model.stop();
    super.onBeforeDetach(msg);
  }

  dispose(): void {
    this.model.dispose();
    super.dispose();
  }

  render(): JSX.Element {
    return <Dashboard model={this.model} actions={this.actions} />;
  }
}

function Dashboard(props: { model: DashboardModel; actions: PanelActions }): JSX.Element {
  const [tab, setTab] = React.useState<Tab>('Sessions');
  const [chosen, setChosen] = React.useState<SessionsView | null>(storedView);
  const [table, setTable] = React.useState<TableState>(initialTableState);
  const auto = React.useRef<SessionsView | null>(null);
  const { model, actions } = props;
  const ui: SessionsUi = {
    chosen,
    auto,
    choose: view => {
      storeView(view);
      setChosen(view);
    },
    table,
    setTable
  };
  return (
    <div className="jp-Sandkasten-body">
      <div className="jp-Sandkasten-header">
        <h2>Sandkasten</h2>
        <div className="jp-Sandkasten-tabs" role="tablist">
          {TABS.map(name => (
            <button
              key={name}
              role="tab"
              data-tab={name}
              aria-selected={tab === name}
              className={'jp-Sandkasten-tab' + (tab === name ? ' jp-mod-active' : '')}
              onClick={() => setTab(name)}
            >
              {name}
            </button>
          ))}
        </div>
      </div>
      <div className="jp-Sandkasten-content">
        {tab === 'Config' ? (
          <ConfigEditor api={model.api} />
        ) : (
          <UseSignal signal={model.changed}>
            {() => {
              switch (tab) {
                case 'Sessions':
                  return <SessionsTab model={model} actions={actions} ui={ui} />;
                case 'Pool':
                  return <PoolTab model={model} />;
                case 'Images':
                  return <ImagesTab model={model} />;
                case 'Workspaces':
                  return <WorkspacesTab model={model} />;
                default:
                  return <EventsTab model={model} />;
              }
            }}
          </UseSignal>
        )}
      </div>
    </div>
  );
}

/** The part's error (if any) above its content; "Loading" before the first answer. */
function Loaded<T>(props: { part: Part<T>; children: (data: T) => JSX.Element }): JSX.Element {
  const { data, error } = props.part;
  return (
    <>
      {error && <ErrorNote message={error} />}
      {data === null ? !error && <p className="jp-Sandkasten-empty">Loading…</p> : props.children(data)}
    </>
  );
}

export function ErrorNote(props: { message: string }): JSX.Element {
  return (
    <div className="jp-Sandkasten-error" role="alert">
      {props.message}
    </div>
  );
}

/** Runs an action of a button; its failure is shown in a dialog, never lost. */
async function attempt(what: string, action: () => Promise<unknown>, model: DashboardModel): Promise<void> {
  try {
    await action();
  } catch (error) {
    await showDialog({
      title: `Could not ${what}`,
      body: error instanceof Error ? error.message : String(error),
      buttons: [Dialog.okButton()]
    });
  }
  await model.refresh();
}

/** Asks before a button's action that cannot be undone ("Destroy", "Delete", "Remove"); then ``attempt``s it. */
async function confirmThen(
  question: { title: string; body: string; label: string },
  what: string,
  action: () => Promise<unknown>,
  model: DashboardModel
): Promise<void> {
  const answer = await showDialog({
    title: question.title,
    body: question.body,
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: question.label })]
  });
  if (answer.button.accept) {
    await attempt(what, action, model);
  }
}

/** Cards, or the instructor's table: the user's choice, else the table once there are many sessions. */
function SessionsTab(props: { model: DashboardModel; actions: PanelActions; ui: SessionsUi }): JSX.Element {
  const { model, actions, ui } = props;
  const sessions = model.sessions.data;
  if (sessions !== null && ui.auto.current === null) {
    ui.auto.current = defaultView(null, sessions.length);
  }
  const view = ui.chosen ?? ui.auto.current ?? 'cards';
  return (
    <>
      <div className="jp-Sandkasten-views" role="group" aria-label="sessions view">
        {(['cards', 'table'] as const).map(name => (
          <button
            key={name}
            data-view={name}
            aria-pressed={view === name}
            className={'jp-Sandkasten-view' + (view === name ? ' jp-mod-active' : '')}
            onClick={() => ui.choose(name)}
          >
            {name === 'cards' ? 'Cards' : 'Table'}
          </button>
        ))}
      </div>
      {view === 'table' ? (
        <Loaded part={model.sessions}>
          {data => (
            <SessionTable
              model={model}
              rows={toRows(data, Date.now(), model.cpu, actions.notebookOf)}
              state={ui.table}
              setState={ui.setTable}
            />
          )}
        </Loaded>
      ) : (
        <SessionCards model={model} actions={actions} />
      )}
    </>
  );
}

function SessionCards(props: { model: DashboardModel; actions: PanelActions }): JSX.Element {
  const { model, actions } = props;
  const now = Date.now();
  const destroy = (session: Session): Promise<void> =>
    confirmThen(
      {
        title: 'Destroy session',
        body: `Destroy session ${session.id}? Its processes stop; a named workspace stays.`,
        label: 'Destroy'
      },
      `destroy ${session.id}`,
      () => model.api.destroySession(session.id),
      model
    );
  const pauseOrResume = async (session: Session): Promise<void> => {
    const paused = session.status === 'paused';
    await attempt(
      `${paused ? 'resume' : 'pause'} ${session.id}`,
      () => (paused ? model.api.resumeSession(session.id) : model.api.pauseSession(session.id)),
      model
    );
  };
  return (
    <Loaded part={model.sessions}>
      {sessions =>
        sessions.length === 0 ? (
          <p className="jp-Sandkasten-empty">No sessions.</p>
        ) : (
          <div className="jp-Sandkasten-cards">
            {sessions.map(session => {
              const usage = session.usage;
              const kernelId = session.kernel?.id ?? session.kernel_id ?? null;
              const notebook = kernelId ? actions.notebookOf(kernelId) : null;
              const network = networkSummary(session);
              const paused = session.status === 'paused';
              const frozen = paused ? 'paused: resume it first' : undefined;
              return (
                <div className="jp-Sandkasten-card" key={session.id} data-session={session.id}>
                  <div className="jp-Sandkasten-cardTitle">
                    <span className="jp-Sandkasten-id" title={session.id}>
                      {shortId(session.id)}
                    </span>
                    <span className="jp-Sandkasten-image">{imageName(session.image)}</span>
                    <span
                      className={`jp-Sandkasten-status jp-Sandkasten-status-${session.status}`}
                      title={paused ? 'frozen: nothing in it runs, its memory stays, its clocks stand still' : undefined}
                    >
                      {session.status}
                    </span>
                  </div>
                  <dl className="jp-Sandkasten-facts">
                    <dt>owner</dt>
                    <dd>{session.owner ?? '–'}</dd>
                    <dt>kernel</dt>
                    <dd title={kernelId ?? ''}>
                      {kernelId ? `${shortId(kernelId)} ${session.kernel?.execution_state ?? ''}` : '–'}
                      {notebook && <span className="jp-Sandkasten-notebook"> ({notebook})</span>}
                    </dd>
                    <dt>workspace</dt>
                    <dd>{session.workspace ?? '(scratch)'}</dd>
                    <dt>network</dt>
                    <dd className="jp-Sandkasten-network" title={network.title}>
                      {network.label}
                      {network.refused > 0 && <span className="jp-Sandkasten-refused"> ({network.refused} refused)</span>}
                    </dd>
                    <dt>age / idle</dt>
                    <dd>
                      {formatDuration(secondsSince(session.created_at, now))} /{' '}
                      {formatDuration(secondsSince(session.last_active, now))}
                    </dd>
                    <dt>CPU</dt>
                    <dd className="jp-Sandkasten-cpu">{formatPercent(model.cpu.get(session.id) ?? null)}</dd>
                    <dt>memory</dt>
                    <dd>
                      {formatMemory(usage?.memory_bytes, usage?.memory_limit_bytes)}
                      <div className="jp-Sandkasten-bar">
                        <div style={{ width: `${memoryFraction(usage?.memory_bytes, usage?.memory_limit_bytes) * 100}%` }} />
                      </div>
                    </dd>
                  </dl>
                  <div className="jp-Sandkasten-actions">
                    <button
                      className="jp-mod-styled jp-mod-accept"
                      data-action="terminal"
                      disabled={paused}
                      title={frozen}
                      onClick={() => actions.openTerminal(session)}
                    >
                      Terminal
                    </button>
                    <button
                      className="jp-mod-styled"
                      data-action="files"
                      disabled={paused}
                      title={frozen}
                      onClick={() => actions.openFiles(session)}
                    >
                      Files
                    </button>
                    <button
                      className="jp-mod-styled"
                      data-action={paused ? 'resume' : 'pause'}
                      onClick={() => void pauseOrResume(session)}
                    >
                      {paused ? 'Resume' : 'Pause'}
                    </button>
                    <button className="jp-mod-styled jp-mod-warn" data-action="destroy" onClick={() => void destroy(session)}>
                      Destroy
                    </button>
                  </div>
                </div>
              );
            })}
          </div>
        )
      }
    </Loaded>
  );
}

function PoolTab(props: { model: DashboardModel }): JSX.Element {
  const { model } = props;
  return (
    <Loaded part={model.pool}>
      {pool => (
        <>
          {!pool.enabled && <p className="jp-Sandkasten-empty">The warm pool is off (pool.enabled).</p>}
          <table className="jp-Sandkasten-table">
            <thead>
              <tr>
                <th>image</th>
                <th>target</th>
                <th>min–max</th>
                <th>ready</th>
                <th>claims</th>
                <th>misses</th>
                <th>last 10 min</th>
              </tr>
            </thead>
            <tbody>
              {Object.entries(pool.images).map(([image, status]) => (
                <PoolRow key={image} image={image} status={status} model={model} />
              ))}
            </tbody>
          </table>
          {pool.schedule && (
            <div className="jp-Sandkasten-schedule">
              <h4>Schedule ({pool.schedule.timezone})</h4>
              {scheduleLines(pool.schedule).map(line => (
                <p key={line}>{line}</p>
              ))}
            </div>
          )}
        </>
      )}
    </Loaded>
  );
}

function PoolRow(props: { image: string; status: Pool['images'][string]; model: DashboardModel }): JSX.Element {
  const { image, status, model } = props;
  const [draft, setDraft] = React.useState<string | null>(null);
  const save = async (): Promise<void> => {
    const target = Number(draft);
    setDraft(null);
    if (draft !== null && Number.isInteger(target) && target >= 0 && target !== status.target) {
      // A fixed pool stays fixed; one that follows demand gets the new floor (its ceiling no lower).
      const size = status.min === status.max ? target : { min: target, max: Math.max(target, status.max) };
      await attempt(`set the ${imageName(image)} target`, () => model.api.setPoolSize(imageName(image), size), model);
    }
  };
  const path = sparklinePath(status.history, {
    width: 100,
    height: 20,
    windowSeconds: SPARK_WINDOW_S,
    now: Date.now() / 1000,
    max: status.target
  });
  return (
    <tr data-image={image}>
      <td title={status.last_error ?? image}>{imageName(image)}</td>
      <td>
        <input
          className="jp-Sandkasten-target"
          type="number"
          min={0}
          aria-label={`pool target for ${image}`}
          value={draft ?? String(status.target)}
          onChange={event => setDraft(event.target.value)}
          onKeyDown={event => {
            if (event.key === 'Enter') {
              void save();
            } else if (event.key === 'Escape') {
              setDraft(null);
            }
          }}
          onBlur={() => void save()}
        />
      </td>
      <td title={status.min === status.max ? 'a fixed count' : 'follows demand between these'}>
        {status.min === status.max ? status.min : `${status.min}–${status.max}`}
      </td>
      <td className="jp-Sandkasten-ready">
        {status.ready}
        {status.starting > 0 ? ` (+${status.starting})` : ''}
      </td>
      <td>{status.claims}</td>
      <td>{status.misses}</td>
      <td>
        <svg className="jp-Sandkasten-spark" viewBox="0 0 100 20" preserveAspectRatio="none" width="100" height="20">
          <path d={path} />
        </svg>
      </td>
    </tr>
  );
}

/** An image's kind, parent, kernel and whether sessions may use it, in one line under its name. */
function imageFacts(image: ImageInfo): string {
  const kind = { builtin: 'built-in', dockerfile: 'Dockerfile', from: 'added' }[image.kind];
  const facts = [image.parent ? `${kind}, on ${image.parent}` : kind, image.kernel ? 'kernel' : 'no kernel'];
  if (!image.allowed) {
    facts.push('not allowed');
  }
  return facts.join(' · ');
}

/** The images sessions are made from. They are added on the server's host (a build runs as root), so the
 * tab says how; an admin may remove an added image that nothing uses. */
function ImagesTab(props: { model: DashboardModel }): JSX.Element {
  const { model } = props;
  React.useEffect(() => {
    model.watchImages(true);
    return () => model.watchImages(false);
  }, [model]);
  const remove = (image: ImageInfo): Promise<void> =>
    confirmThen(
      {
        title: 'Remove image',
        body: `Remove image "${image.name}" (${image.tag})? Sessions can no longer be made from it; adding it again rebuilds it.`,
        label: 'Remove'
      },
      `remove image ${image.name}`,
      () => model.api.removeImage(image.name),
      model
    );
  return (
    <>
      <p className="jp-Sandkasten-hint">
        Add an image on the server&apos;s host: <code>sandkasten images add NAME --dockerfile PATH</code> or{' '}
        <code>sandkasten images add NAME --from IMAGE</code>, then list NAME in <code>security.allowed_images</code>.
      </p>
      <Loaded part={model.images}>
        {({ images, admin }) => (
          <table className="jp-Sandkasten-table jp-Sandkasten-images">
            <thead>
              <tr>
                <th>image</th>
                <th>size</th>
                <th>state</th>
                {admin && <th />}
              </tr>
            </thead>
            <tbody>
              {images.map(image => (
                <tr key={image.name} data-image-name={image.name}>
                  <td title={image.source ? `${image.tag}\nfrom ${image.source}` : image.tag}>
                    <div className="jp-Sandkasten-imageName">{image.name}</div>
                    <div className="jp-Sandkasten-sub">{imageFacts(image)}</div>
                  </td>
                  <td className="jp-Sandkasten-size">{image.size_bytes === null ? '–' : formatBytes(image.size_bytes)}</td>
                  <td className={`jp-Sandkasten-state jp-Sandkasten-state-${image.state}`} title={image.error ?? undefined}>
                    {image.state}
                  </td>
                  {admin && (
                    <td>
                      {image.kind !== 'builtin' && (
                        <button
                          className="jp-mod-styled jp-mod-warn"
                          disabled={image.in_use}
                          title={image.in_use ? 'a session or the warm pool uses it' : undefined}
                          onClick={() => void remove(image)}
                        >
                          Remove
                        </button>
                      )}
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Loaded>
    </>
  );
}

function WorkspacesTab(props: { model: DashboardModel }): JSX.Element {
  const { model } = props;
  const remove = (ws: Workspace): Promise<void> => {
    const name = ws.owner ? `${ws.owner}'s "${ws.name}"` : `"${ws.name}"`;
    return confirmThen(
      { title: 'Delete workspace', body: `Delete workspace ${name} and every file in it? This cannot be undone.`, label: 'Delete' },
      `delete workspace ${ws.name}`,
      () => model.api.deleteWorkspace(ws.name, ws.owner),
      model
    );
  };
  const now = Date.now();
  return (
    <Loaded part={model.workspaces}>
      {workspaces =>
        workspaces.length === 0 ? (
          <p className="jp-Sandkasten-empty">No named workspaces.</p>
        ) : (
          <table className="jp-Sandkasten-table">
            <thead>
              <tr>
                <th>name</th>
                {workspaces.some(ws => ws.owner) && <th>owner</th>}
                <th>size</th>
                <th>in use by</th>
                <th>last used</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {workspaces.map(ws => (
                <tr key={`${ws.owner ?? ''}/${ws.name}`} data-workspace={ws.name}>
                  <td>{ws.name}</td>
                  {workspaces.some(w => w.owner) && <td>{ws.owner ?? '–'}</td>}
                  <td>{formatBytes(ws.size_bytes)}</td>
                  <td>{ws.in_use_by.length ? ws.in_use_by.map(shortId).join(', ') : '–'}</td>
                  <td>{ws.last_used ? `${formatDuration(secondsSince(ws.last_used, now))} ago` : '–'}</td>
                  <td>
                    <button className="jp-mod-styled jp-mod-warn" disabled={ws.in_use_by.length > 0} onClick={() => void remove(ws)}>
                      Delete
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )
      }
    </Loaded>
  );
}

function EventsTab(props: { model: DashboardModel }): JSX.Element {
  return (
    <Loaded part={props.model.events}>
      {events => (
        <table className="jp-Sandkasten-table jp-Sandkasten-events">
          <thead>
            <tr>
              <th>when</th>
              <th>event</th>
              <th>session</th>
              <th>detail</th>
            </tr>
          </thead>
          <tbody>
            {events.map(event => (
              <tr key={event.seq}>
                <td>{new Date(event.at * 1000).toLocaleTimeString()}</td>
                <td>{event.kind}</td>
                <td>{event.session_id ? shortId(event.session_id) : '–'}</td>
                <td className="jp-Sandkasten-detail">{Object.keys(event.detail).length ? JSON.stringify(event.detail) : ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Loaded>
  );
}
