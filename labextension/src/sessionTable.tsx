/**
 * The Sessions tab as a table, for an instructor with a classroom of sessions: one row per
 * session, sortable columns, a filter by student, and bulk actions (end the selected sessions,
 * all of one student's, or those idle for longer than N minutes), each confirmed first and
 * reported row by row. Everything comes from the model's one listing per refresh
 * (`GET sessions?usage=true`): a refresh makes no request per row.
 */
import * as React from 'react';
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { DashboardModel } from './model';
import { formatBytes, formatDuration, formatPercent, shortId } from './format';
import {
  BulkResult,
  DEFAULT_SORT,
  RowProgress,
  SessionRow,
  Sort,
  SortKey,
  bulkQuestion,
  countLabel,
  endSessions,
  filterRows,
  headerCheck,
  idleRows,
  nextSort,
  parseMinutes,
  selectedRows,
  soleOwner,
  sortRows,
  toggleAll,
  toggleOne
} from './sessionRows';

/** A bulk action under way or just done: each of its sessions' progress, and the counts once it ended. */
export interface Bulk {
  label: string;
  ids: string[];
  progress: Record<string, RowProgress>;
  result: BulkResult | null;
}

/** What the table remembers between refreshes and while another tab is open. */
export interface TableState {
  sort: Sort;
  filter: string;
  selected: ReadonlySet<string>;
  cullMinutes: string;
  bulk: Bulk | null;
}

export function initialTableState(): TableState {
  return { sort: DEFAULT_SORT, filter: '', selected: new Set(), cullMinutes: '30', bulk: null };
}

export type SetTableState = (update: (state: TableState) => TableState) => void;

interface Column {
  key: SortKey;
  label: string;
  numeric?: boolean;
  title?: string;
}

const COLUMNS: Column[] = [
  { key: 'id', label: 'session' },
  { key: 'owner', label: 'owner' },
  { key: 'image', label: 'image' },
  { key: 'kernel', label: 'kernel', title: "the kernel's state" },
  { key: 'notebook', label: 'notebook', title: 'the notebook open on its kernel, where JupyterLab knows it' },
  { key: 'age', label: 'age', numeric: true },
  { key: 'idle', label: 'idle', numeric: true, title: "since its last exec, file, terminal or kernel message" },
  { key: 'cpu', label: 'CPU', numeric: true },
  { key: 'memory', label: 'memory', numeric: true },
  { key: 'status', label: 'status' }
];

function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1) || path;
}

function progressLabel(progress: RowProgress): string {
  switch (progress.state) {
    case 'waiting':
      return 'waiting';
    case 'ending':
      return 'ending…';
    case 'ended':
      return 'ended';
    case 'failed':
      return `failed: ${progress.error}`;
  }
}

export function SessionTable(props: {
  model: DashboardModel;
  rows: SessionRow[];
  state: TableState;
  setState: SetTableState;
}): JSX.Element {
  const { model, rows, state, setState } = props;
  const shown = sortRows(filterRows(rows, state.filter), state.sort);
  const check = headerCheck(state.selected, shown);
  const chosen = selectedRows(state.selected, shown);
  const student = soleOwner(state.filter, shown);
  const minutes = parseMinutes(state.cullMinutes);
  const idle = minutes === null ? [] : idleRows(shown, minutes);
  const bulk = state.bulk;
  const busy = bulk !== null && bulk.result === null;

  const run = async (label: string, targets: SessionRow[], title: string, verb: string): Promise<void> => {
    if (targets.length === 0 || busy) {
      return;
    }
    const answer = await showDialog({
      title,
      body: `${bulkQuestion(targets)} Their processes stop; named workspaces stay.`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: verb })]
    });
    if (!answer.button.accept) {
      return;
    }
    const ids = targets.map(row => row.id);
    setState(s => ({ ...s, bulk: { label, ids, progress: {}, result: null } }));
    // Only this run's report: a later run has its own.
    const report = (id: string, progress: RowProgress): void =>
      setState(s => {
        const current = s.bulk;
        return current && current.ids === ids
          ? { ...s, bulk: { ...current, progress: { ...current.progress, [id]: progress } } }
          : s;
      });
    const result = await endSessions(ids, id => model.api.destroySession(id), report);
    setState(s => {
      const selected = new Set(s.selected);
      ids.forEach(id => selected.delete(id));
      return { ...s, selected, bulk: s.bulk && s.bulk.ids === ids ? { ...s.bulk, result } : s.bulk };
    });
    await model.refresh();
  };

  return (
    <div className="jp-Sandkasten-instructor">
      <div className="jp-Sandkasten-toolbar">
        <input
          type="search"
          className="jp-Sandkasten-filter"
          placeholder="Filter by student"
          aria-label="filter by student"
          title="a part of the owner's name; several, separated by commas"
          value={state.filter}
          onChange={event => {
            const filter = event.target.value;
            setState(s => ({ ...s, filter }));
          }}
        />
        <span className="jp-Sandkasten-count" aria-live="polite">
          {countLabel(shown.length, rows.length)}
        </span>
      </div>
      <div className="jp-Sandkasten-bulk">
        <button
          className="jp-mod-styled jp-mod-warn"
          data-bulk="end-selected"
          disabled={busy || chosen.length === 0}
          onClick={() => void run('End selected', chosen, 'End the selected sessions', 'End')}
        >
          End selected ({chosen.length})
        </button>
        <button
          className="jp-mod-styled jp-mod-warn"
          data-bulk="end-student"
          disabled={busy || student === null}
          title={student === null ? 'filter by one student first' : undefined}
          onClick={() => {
            if (student !== null) {
              void run(`End all of ${student}`, shown, `End all of ${student}`, 'End all');
            }
          }}
        >
          {student === null ? 'End all of a student' : `End all of ${student}`}
        </button>
        <span className="jp-Sandkasten-cull">
          <button
            className="jp-mod-styled jp-mod-warn"
            data-bulk="cull"
            disabled={busy || idle.length === 0}
            title="end the shown sessions idle for longer than this"
            onClick={() =>
              void run(`Cull idle > ${minutes} min`, idle, `Cull sessions idle for more than ${minutes} min`, 'Cull')
            }
          >
            Cull idle ({idle.length})
          </button>
          <label>
            {'> '}
            <input
              type="number"
              min={0}
              step={1}
              className="jp-Sandkasten-minutes"
              aria-label="idle for more than (minutes)"
              aria-invalid={minutes === null}
              value={state.cullMinutes}
              onChange={event => {
                const cullMinutes = event.target.value;
                setState(s => ({ ...s, cullMinutes }));
              }}
            />{' '}
            min
          </label>
        </span>
      </div>
      {bulk && <BulkReport bulk={bulk} onDismiss={() => setState(s => ({ ...s, bulk: null }))} />}
      <table className="jp-Sandkasten-table jp-Sandkasten-sessions">
        <thead>
          <tr>
            <th className="jp-Sandkasten-check">
              <input
                type="checkbox"
                aria-label="select all shown"
                data-select="all"
                checked={check === 'all'}
                disabled={shown.length === 0}
                ref={element => {
                  if (element) {
                    element.indeterminate = check === 'some';
                  }
                }}
                onChange={() => setState(s => ({ ...s, selected: toggleAll(s.selected, shown) }))}
              />
            </th>
            {COLUMNS.map(column => {
              const sorted = state.sort.key === column.key;
              return (
                <th
                  key={column.key}
                  className={`jp-Sandkasten-col-${column.key}` + (column.numeric ? ' jp-mod-numeric' : '')}
                  aria-sort={sorted ? (state.sort.descending ? 'descending' : 'ascending') : 'none'}
                  title={column.title}
                >
                  <button
                    className="jp-Sandkasten-sort"
                    data-sort={column.key}
                    onClick={() => setState(s => ({ ...s, sort: nextSort(s.sort, column.key) }))}
                  >
                    {column.label}
                    <span className="jp-Sandkasten-arrow">{sorted ? (state.sort.descending ? '▼' : '▲') : ''}</span>
                  </button>
                </th>
              );
            })}
          </tr>
        </thead>
        <tbody>
          {shown.map(row => (
            <Row
              key={row.id}
              row={row}
              selected={state.selected.has(row.id)}
              progress={bulk?.progress[row.id]}
              onToggle={() => setState(s => ({ ...s, selected: toggleOne(s.selected, row.id) }))}
            />
          ))}
        </tbody>
      </table>
      {shown.length === 0 && (
        <p className="jp-Sandkasten-empty">{rows.length === 0 ? 'No sessions.' : 'No session matches the filter.'}</p>
      )}
    </div>
  );
}

function Row(props: {
  row: SessionRow;
  selected: boolean;
  progress: RowProgress | undefined;
  onToggle: () => void;
}): JSX.Element {
  const { row, selected, progress } = props;
  const paused = row.status === 'paused';
  const limit = row.memoryLimit ? ` (${Math.round(((row.memoryBytes ?? 0) / row.memoryLimit) * 100)} %)` : '';
  return (
    <tr
      data-session={row.id}
      data-owner={row.owner ?? ''}
      className={(selected ? 'jp-mod-selected' : '') + (progress?.state === 'ended' ? ' jp-mod-ended' : '')}
    >
      <td className="jp-Sandkasten-check">
        <input type="checkbox" aria-label={`select ${row.id}`} checked={selected} onChange={props.onToggle} />
      </td>
      <td className="jp-Sandkasten-id" title={row.id}>
        {shortId(row.id)}
      </td>
      <td className="jp-Sandkasten-col-owner">{row.owner ?? '–'}</td>
      <td title={row.session.image}>{row.image}</td>
      <td title={row.kernelId ?? 'no kernel'}>{row.kernelId ? (row.kernelState ?? '?') : '–'}</td>
      <td className="jp-Sandkasten-col-notebook" title={row.notebook ?? undefined}>
        {row.notebook ? basename(row.notebook) : '–'}
      </td>
      <td className="jp-mod-numeric">{formatDuration(row.ageS)}</td>
      <td className="jp-mod-numeric jp-Sandkasten-col-idle">{formatDuration(row.idleS)}</td>
      <td className="jp-mod-numeric jp-Sandkasten-cpu">{formatPercent(row.cpu)}</td>
      <td className="jp-mod-numeric" title={row.memoryLimit ? `limit ${formatBytes(row.memoryLimit)}` : 'no limit'}>
        {row.memoryBytes === null ? '–' : formatBytes(row.memoryBytes) + limit}
      </td>
      <td className="jp-Sandkasten-col-status">
        <span
          className={`jp-Sandkasten-status jp-Sandkasten-status-${row.status}`}
          title={paused ? 'frozen: nothing in it runs, its memory stays, its clocks stand still' : undefined}
        >
          {row.status}
        </span>
        {progress && (
          <span
            className={`jp-Sandkasten-rowProgress jp-mod-${progress.state}`}
            title={progress.state === 'failed' ? progress.error : undefined}
            role={progress.state === 'failed' ? 'alert' : undefined}
          >
            {progressLabel(progress)}
          </span>
        )}
      </td>
    </tr>
  );
}

function BulkReport(props: { bulk: Bulk; onDismiss: () => void }): JSX.Element {
  const { bulk } = props;
  const states = Object.values(bulk.progress);
  const ended = states.filter(p => p.state === 'ended').length;
  const failed = states.filter(p => p.state === 'failed').length;
  const total = bulk.ids.length;
  const done = bulk.result !== null;
  return (
    <div
      className={'jp-Sandkasten-progress' + (failed > 0 ? ' jp-mod-failed' : done ? ' jp-mod-done' : '')}
      role="status"
      data-done={done}
    >
      <span>
        {bulk.label}: {done ? 'ended' : 'ending'} {ended} of {total}
        {failed > 0 ? `; ${failed} failed (see their rows)` : ''}
        {done ? '.' : '…'}
      </span>
      <progress max={total} value={ended + failed} />
      {done && (
        <button className="jp-Sandkasten-link" aria-label="dismiss" onClick={props.onDismiss}>
          ×
        </button>
      )}
    </div>
  );
}
