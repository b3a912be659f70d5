/**
 * The instructor's table of sessions, as pure logic: one row per session from the one
 * polled listing (`GET sessions?usage=true`), sorting, filtering by student, the
 * selection, the idle sessions to cull, and ending sessions in bulk with progress per row.
 * No JupyterLab imports, so the unit tests run it in node.
 */

import { ApiError, Session } from './api';
import { imageName, secondsSince } from './format';

export type SortKey = 'id' | 'owner' | 'image' | 'kernel' | 'notebook' | 'age' | 'idle' | 'cpu' | 'memory' | 'status';

export interface Sort {
  key: SortKey;
  descending: boolean;
}

export const DEFAULT_SORT: Sort = { key: 'owner', descending: false };

/** What a column of the table shows of one session (nulls: not known, or none). */
export interface SessionRow {
  id: string;
  owner: string | null;
  image: string;
  kernelId: string | null;
  kernelState: string | null;
  notebook: string | null;
  createdAt: number;
  ageS: number;
  idleS: number;
  cpu: number | null;
  memoryBytes: number | null;
  memoryLimit: number | null;
  status: string;
  session: Session;
}

/** The kernel's last activity (Jupyter's ISO time) in epoch seconds; null when there is none or it does not parse. */
function kernelActivity(session: Session): number | null {
  const when = session.kernel?.last_activity;
  if (!when) {
    return null;
  }
  const ms = Date.parse(when);
  return Number.isFinite(ms) ? ms / 1000 : null;
}

/**
 * Seconds since the session was last used, at `nowMs` (as Date.now()): its own last_active
 * (an exec, a file, a terminal), or its kernel's last message if that is later, as the server's
 * idle culling counts it. A kernel that is busy right now is in use: 0.
 */
export function idleSeconds(session: Session, nowMs: number): number {
  if (session.kernel?.execution_state === 'busy') {
    return 0;
  }
  const kernel = kernelActivity(session);
  const lastUse = kernel === null ? session.last_active : Math.max(session.last_active, kernel);
  return secondsSince(lastUse, nowMs);
}

/** The table's rows, in the listing's order: CPU % from the model (two readings), the notebook from JupyterLab. */
export function toRows(
  sessions: Session[],
  nowMs: number,
  cpu: ReadonlyMap<string, number | null>,
  notebookOf: (kernelId: string) => string | null
): SessionRow[] {
  return sessions.map(session => {
    const kernelId = session.kernel?.id ?? session.kernel_id ?? null;
    return {
      id: session.id,
      owner: session.owner ?? null,
      image: imageName(session.image),
      kernelId,
      kernelState: kernelId ? (session.kernel?.execution_state ?? null) : null,
      notebook: kernelId ? notebookOf(kernelId) : null,
      createdAt: session.created_at,
      ageS: secondsSince(session.created_at, nowMs),
      idleS: idleSeconds(session, nowMs),
      cpu: cpu.get(session.id) ?? null,
      memoryBytes: session.usage?.memory_bytes ?? null,
      memoryLimit: session.usage?.memory_limit_bytes ?? null,
      status: session.status,
      session
    };
  });
}

type Value = string | number | null;

function valueOf(row: SessionRow, key: SortKey): Value {
  switch (key) {
    case 'id':
      return row.id;
    case 'owner':
      return row.owner;
    case 'image':
      return row.image;
    case 'kernel':
      return row.kernelState;
    case 'notebook':
      return row.notebook;
    case 'age':
      return row.ageS;
    case 'idle':
      return row.idleS;
    case 'cpu':
      return row.cpu;
    case 'memory':
      return row.memoryBytes;
    case 'status':
      return row.status;
  }
}

function compareValues(a: Value, b: Value): number {
  if (typeof a === 'number' && typeof b === 'number') {
    return a - b;
  }
  return String(a).localeCompare(String(b), undefined, { numeric: true, sensitivity: 'base' });
}

/**
 * The rows sorted by one column, ascending or descending; a cell with nothing in it
 * (no kernel, no CPU reading yet) goes last either way. Ties: by owner, then the
 * oldest first, then by id, so rows never swap places between two refreshes.
 */
export function sortRows(rows: readonly SessionRow[], sort: Sort): SessionRow[] {
  const direction = sort.descending ? -1 : 1;
  const tie = (a: SessionRow, b: SessionRow): number =>
    compareValues(a.owner ?? '', b.owner ?? '') || a.createdAt - b.createdAt || compareValues(a.id, b.id);
  return [...rows].sort((a, b) => {
    const x = valueOf(a, sort.key);
    const y = valueOf(b, sort.key);
    if (x === null || y === null) {
      return x === y ? tie(a, b) : x === null ? 1 : -1;
    }
    return direction * compareValues(x, y) || tie(a, b);
  });
}

/** A click on a column's header: that column ascending, or the other way round if it was sorted by already.
 * Times, CPU and memory start with the largest (the longest idle, the busiest). */
export function nextSort(current: Sort, key: SortKey): Sort {
  if (current.key === key) {
    return { key, descending: !current.descending };
  }
  return { key, descending: ['age', 'idle', 'cpu', 'memory'].includes(key) };
}

/** The filter box's text as the names it looks for: comma-separated, trimmed, lower case; none: everyone. */
export function filterTerms(query: string): string[] {
  return query
    .split(',')
    .map(term => term.trim().toLowerCase())
    .filter(term => term.length > 0);
}

/** The rows whose owner contains one of the filter's names (case-insensitive); all of them for an empty filter. */
export function filterRows(rows: readonly SessionRow[], query: string): SessionRow[] {
  const terms = filterTerms(query);
  if (terms.length === 0) {
    return [...rows];
  }
  return rows.filter(row => {
    const owner = (row.owner ?? '').toLowerCase();
    return terms.some(term => owner.includes(term));
  });
}

/** The one student whose sessions a filter shows (every row of the filter is theirs), for "End all of <student>";
 * null when the filter is empty, shows nothing, or shows more than one owner. */
export function soleOwner(query: string, filtered: readonly SessionRow[]): string | null {
  if (filterTerms(query).length === 0 || filtered.length === 0) {
    return null;
  }
  const owner = filtered[0].owner;
  return owner !== null && filtered.every(row => row.owner === owner) ? owner : null;
}

/** The rows idle for longer than `minutes` (0: every row not in use this very second). */
export function idleRows(rows: readonly SessionRow[], minutes: number): SessionRow[] {
  if (!Number.isFinite(minutes) || minutes < 0) {
    return [];
  }
  return rows.filter(row => row.idleS > minutes * 60);
}

/** The cull box's text as minutes (a whole or decimal number, 0 or more); null when it is not one. */
export function parseMinutes(text: string): number | null {
  const trimmed = text.trim();
  if (!/^\d+(\.\d+)?$/.test(trimmed)) {
    return null;
  }
  return Number(trimmed);
}

// The selection: a set of session ids. Only the selected rows the filter shows are acted on.

export type HeaderCheck = 'none' | 'some' | 'all';

/** The select-all checkbox of the rows shown: checked, indeterminate or clear. */
export function headerCheck(selected: ReadonlySet<string>, shown: readonly SessionRow[]): HeaderCheck {
  const count = shown.filter(row => selected.has(row.id)).length;
  if (count === 0) {
    return 'none';
  }
  return count === shown.length ? 'all' : 'some';
}

/** A click on the select-all checkbox: every shown row selected, or (if they all were) none of them.
 * Rows the filter hides keep their state. */
export function toggleAll(selected: ReadonlySet<string>, shown: readonly SessionRow[]): Set<string> {
  const next = new Set(selected);
  if (headerCheck(selected, shown) === 'all') {
    shown.forEach(row => next.delete(row.id));
  } else {
    shown.forEach(row => next.add(row.id));
  }
  return next;
}

export function toggleOne(selected: ReadonlySet<string>, id: string): Set<string> {
  const next = new Set(selected);
  if (!next.delete(id)) {
    next.add(id);
  }
  return next;
}

/** The selected rows among those shown: what "End selected" ends. */
export function selectedRows(selected: ReadonlySet<string>, shown: readonly SessionRow[]): SessionRow[] {
  return shown.filter(row => selected.has(row.id));
}

/** "alice (2), bob": whose sessions a bulk action ends, for its confirm dialog. */
export function ownersSummary(rows: readonly SessionRow[]): string {
  const counts = new Map<string, number>();
  for (const row of rows) {
    const owner = row.owner ?? '(no owner)';
    counts.set(owner, (counts.get(owner) ?? 0) + 1);
  }
  return [...counts.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([owner, count]) => (count > 1 ? `${owner} (${count})` : owner))
    .join(', ');
}

/** "alice's 2 sessions" or "3 sessions: alice (2), bob": what a bulk action's confirm asks to end. */
export function bulkQuestion(rows: readonly SessionRow[]): string {
  const owners = new Set(rows.map(row => row.owner));
  const count = rows.length === 1 ? 'session' : `${rows.length} sessions`;
  const [owner] = owners;
  if (owners.size === 1 && owner !== null && owner !== undefined) {
    return `End ${owner}'s ${count}?`;
  }
  return `End ${rows.length === 1 ? '1 session' : count}: ${ownersSummary(rows)}?`;
}

/** "1 session", "3 of 60 sessions": how many rows the filter shows. */
export function countLabel(shown: number, total: number): string {
  const noun = total === 1 ? 'session' : 'sessions';
  return shown === total ? `${total} ${noun}` : `${shown} of ${total} ${noun}`;
}

// Ending sessions in bulk.

export type RowProgress =
  | { state: 'waiting' }
  | { state: 'ending' }
  | { state: 'ended' }
  | { state: 'failed'; error: string };

export interface BulkResult {
  ended: number;
  failed: number;
}

/** How many DELETEs are under way at once: enough for 60 sessions in a few seconds, few enough for a small server. */
export const BULK_CONCURRENCY = 4;

/**
 * End each session with `destroy` (DELETE sessions/{id}), a few at a time, reporting each one's
 * progress (waiting, ending, then ended or failed with the server's message). A session
 * that is already gone (404) counts as ended. Never throws: failures are in the report.
 */
export async function endSessions(
  ids: readonly string[],
  destroy: (id: string) => Promise<void>,
  report: (id: string, progress: RowProgress) => void,
  concurrency: number = BULK_CONCURRENCY
): Promise<BulkResult> {
  const result: BulkResult = { ended: 0, failed: 0 };
  ids.forEach(id => report(id, { state: 'waiting' }));
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < ids.length) {
      const id = ids[next++];
      report(id, { state: 'ending' });
      try {
        await destroy(id);
        result.ended += 1;
        report(id, { state: 'ended' });
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) {
          result.ended += 1;
          report(id, { state: 'ended' });
        } else {
          result.failed += 1;
          report(id, { state: 'failed', error: error instanceof Error ? error.message : String(error) });
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, ids.length)) }, worker));
  return result;
}

// Which view the Sessions tab opens in.

export type SessionsView = 'cards' | 'table';

/** Above this many sessions the table is the better default (cards need a screen each for a few). */
export const TABLE_ABOVE = 8;

/** The user's own choice if they made one, else the table for more than TABLE_ABOVE sessions. */
export function defaultView(chosen: SessionsView | null, sessions: number): SessionsView {
  return chosen ?? (sessions > TABLE_ABOVE ? 'table' : 'cards');
}
