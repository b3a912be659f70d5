// The instructor's table as logic: rows from one listing, idle time, sorting, filtering, selection, bulk ending.
import { describe, expect, it } from 'vitest';
import { ApiError, Session } from '../src/api';
import {
  RowProgress,
  SessionRow,
  TABLE_ABOVE,
  bulkQuestion,
  countLabel,
  defaultView,
  endSessions,
  filterRows,
  headerCheck,
  idleRows,
  idleSeconds,
  nextSort,
  ownersSummary,
  parseMinutes,
  selectedRows,
  soleOwner,
  sortRows,
  toRows,
  toggleAll,
  toggleOne
} from '../src/sessionRows';

const NOW_MS = 1_000_000_000; // Date.now() of the tests: epoch second 1_000_000

function session(id: string, owner: string | null, fields: Partial<Session> = {}): Session {
  return {
    id,
    image: 'sandkasten/runtime:python',
    owner,
    workspace: null,
    status: 'running',
    created_at: 1_000_000 - 3600,
    last_active: 1_000_000 - 60,
    limits: {},
    ...fields
  };
}

function rows(sessions: Session[], cpu: Record<string, number | null> = {}): SessionRow[] {
  const notebookOf = (kernel: string): string | null => (kernel === 'k-ann' ? 'work/lab1.ipynb' : null);
  return toRows(sessions, NOW_MS, new Map(Object.entries(cpu)), notebookOf);
}

const ids = (list: SessionRow[]): string[] => list.map(row => row.id);

describe('idleSeconds', () => {
  it('counts from last_active to now', () => {
    expect(idleSeconds(session('s', 'ann', { last_active: 1_000_000 - 125 }), NOW_MS)).toBe(125);
  });
  it("takes the kernel's last message when it is later, as the server's culling does", () => {
    const kernel = { id: 'k', execution_state: 'idle', last_activity: new Date((1_000_000 - 10) * 1000).toISOString() };
    expect(idleSeconds(session('s', 'ann', { last_active: 1_000_000 - 600, kernel }), NOW_MS)).toBe(10);
    const older = { ...kernel, last_activity: new Date((1_000_000 - 900) * 1000).toISOString() };
    expect(idleSeconds(session('s', 'ann', { last_active: 1_000_000 - 600, kernel: older }), NOW_MS)).toBe(600);
  });
  it('is 0 while the kernel is busy, and never negative', () => {
    const busy = { id: 'k', execution_state: 'busy', last_activity: null };
    expect(idleSeconds(session('s', 'ann', { last_active: 1_000_000 - 600, kernel: busy }), NOW_MS)).toBe(0);
    expect(idleSeconds(session('s', 'ann', { last_active: 1_000_000 + 5 }), NOW_MS)).toBe(0);
  });
  it('ignores a kernel time that does not parse', () => {
    const kernel = { id: 'k', execution_state: 'idle', last_activity: 'yesterday-ish' };
    expect(idleSeconds(session('s', 'ann', { last_active: 1_000_000 - 30, kernel }), NOW_MS)).toBe(30);
  });
});

describe('toRows', () => {
  it('takes every column from the one listing, CPU from the model and the notebook from JupyterLab', () => {
    const [row] = rows(
      [
        session('s1', 'ann', {
          kernel: { id: 'k-ann', execution_state: 'idle' },
          usage: { pids: 3, memory_bytes: 100, memory_limit_bytes: 400, cpu_ns: 1, sampled_at: 1 }
        })
      ],
      { s1: 12.5 }
    );
    expect(row).toMatchObject({
      id: 's1',
      owner: 'ann',
      image: 'python',
      kernelId: 'k-ann',
      kernelState: 'idle',
      notebook: 'work/lab1.ipynb',
      ageS: 3600,
      idleS: 60,
      cpu: 12.5,
      memoryBytes: 100,
      memoryLimit: 400,
      status: 'running'
    });
  });
  it('leaves empty what is not known', () => {
    const [row] = rows([session('s1', null, { usage: null })]);
    expect(row).toMatchObject({ owner: null, kernelId: null, kernelState: null, notebook: null });
    expect(row).toMatchObject({ cpu: null, memoryBytes: null });
  });
});

describe('sortRows', () => {
  const table = rows(
    [
      session('a', 'carol', { last_active: 1_000_000 - 10, created_at: 1_000_000 - 100 }),
      session('b', 'Alice', { last_active: 1_000_000 - 500, created_at: 1_000_000 - 300 }),
      session('c', 'bob', { last_active: 1_000_000 - 90, created_at: 1_000_000 - 200 }),
      session('d', 'alice', { last_active: 1_000_000 - 90, created_at: 1_000_000 - 400, status: 'paused' })
    ],
    { a: 50, b: null, c: 5, d: 0.5 }
  );

  it('sorts by owner without regard to case, ties by age (oldest first)', () => {
    expect(ids(sortRows(table, { key: 'owner', descending: false }))).toEqual(['d', 'b', 'c', 'a']);
    expect(ids(sortRows(table, { key: 'owner', descending: true }))).toEqual(['a', 'c', 'd', 'b']);
  });
  it('sorts numbers as numbers, and puts the unknown last either way', () => {
    expect(ids(sortRows(table, { key: 'cpu', descending: true }))).toEqual(['a', 'c', 'd', 'b']);
    expect(ids(sortRows(table, { key: 'cpu', descending: false }))).toEqual(['d', 'c', 'a', 'b']);
    expect(ids(sortRows(table, { key: 'idle', descending: true }))).toEqual(['b', 'd', 'c', 'a']);
    expect(ids(sortRows(table, { key: 'age', descending: false }))).toEqual(['a', 'c', 'b', 'd']);
  });
  it('sorts by status, and leaves its input alone', () => {
    const before = ids(table);
    // paused first, then the running ones by owner
    expect(ids(sortRows(table, { key: 'status', descending: false }))).toEqual(['d', 'b', 'c', 'a']);
    expect(ids(table)).toEqual(before);
  });
  it('orders names with numbers the way people count', () => {
    const students = rows([session('x', 'student10'), session('y', 'student9'), session('z', 'student1')]);
    expect(sortRows(students, { key: 'owner', descending: false }).map(row => row.owner)).toEqual([
      'student1',
      'student9',
      'student10'
    ]);
  });
  it('a header click sorts by that column, a second click turns it round; times start with the largest', () => {
    expect(nextSort({ key: 'owner', descending: false }, 'owner')).toEqual({ key: 'owner', descending: true });
    expect(nextSort({ key: 'owner', descending: true }, 'image')).toEqual({ key: 'image', descending: false });
    expect(nextSort({ key: 'owner', descending: false }, 'idle')).toEqual({ key: 'idle', descending: true });
  });
});

describe('filterRows and soleOwner', () => {
  const table = rows([
    session('a1', 'alice'),
    session('a2', 'alice'),
    session('b1', 'bob'),
    session('m1', 'malice'),
    session('n1', null)
  ]);

  it('keeps the rows whose owner contains the text, in any case; an empty filter keeps all', () => {
    expect(ids(filterRows(table, ''))).toEqual(['a1', 'a2', 'b1', 'm1', 'n1']);
    expect(ids(filterRows(table, '  '))).toEqual(['a1', 'a2', 'b1', 'm1', 'n1']);
    expect(ids(filterRows(table, 'BO'))).toEqual(['b1']);
    expect(ids(filterRows(table, 'alice'))).toEqual(['a1', 'a2', 'm1']);
    expect(ids(filterRows(table, 'nobody'))).toEqual([]);
  });
  it('takes several names separated by commas', () => {
    expect(ids(filterRows(table, 'bob, malice'))).toEqual(['b1', 'm1']);
  });
  it('names the student only when every shown row is theirs', () => {
    expect(soleOwner('bo', filterRows(table, 'bo'))).toBe('bob');
    expect(soleOwner('ali', filterRows(table, 'ali'))).toBeNull(); // alice and malice
    expect(soleOwner('', filterRows(table, ''))).toBeNull();
    expect(soleOwner('zed', filterRows(table, 'zed'))).toBeNull();
  });
});

describe('idleRows and parseMinutes', () => {
  const table = rows([
    session('fresh', 'a', { last_active: 1_000_000 - 30 }),
    session('tea', 'a', { last_active: 1_000_000 - 11 * 60 }),
    session('gone', 'b', { last_active: 1_000_000 - 3 * 3600 }),
    session('now', 'b', { last_active: 1_000_000 })
  ]);
  it('finds the rows idle for longer than the minutes', () => {
    expect(ids(idleRows(table, 10))).toEqual(['tea', 'gone']);
    expect(ids(idleRows(table, 60))).toEqual(['gone']);
    expect(ids(idleRows(table, 0))).toEqual(['fresh', 'tea', 'gone']);
    expect(ids(idleRows(table, 0.25))).toEqual(['fresh', 'tea', 'gone']);
    expect(ids(idleRows(table, -1))).toEqual([]);
  });
  it('reads the minutes box', () => {
    expect(parseMinutes('30')).toBe(30);
    expect(parseMinutes(' 0 ')).toBe(0);
    expect(parseMinutes('1.5')).toBe(1.5);
    expect(parseMinutes('')).toBeNull();
    expect(parseMinutes('-5')).toBeNull();
    expect(parseMinutes('ten')).toBeNull();
  });
});

describe('the selection', () => {
  const table = rows([session('a1', 'alice'), session('a2', 'alice'), session('b1', 'bob')]);
  const alice = filterRows(table, 'alice');

  it('select-all selects the shown rows only, and a second click clears them', () => {
    const some = toggleAll(new Set(), alice);
    expect([...some].sort()).toEqual(['a1', 'a2']);
    expect(headerCheck(some, alice)).toBe('all');
    expect(headerCheck(some, table)).toBe('some');
    const none = toggleAll(some, alice);
    expect(none.size).toBe(0);
    expect(headerCheck(none, alice)).toBe('none');
  });
  it('select-all completes a partial selection and keeps what the filter hides', () => {
    const partial = toggleAll(new Set(['a1', 'b1']), alice);
    expect([...partial].sort()).toEqual(['a1', 'a2', 'b1']);
    expect([...toggleAll(partial, alice)]).toEqual(['b1']);
  });
  it('a row toggles alone, and only shown rows are acted on', () => {
    const selected = toggleOne(toggleOne(new Set(), 'a1'), 'b1');
    expect(ids(selectedRows(selected, alice))).toEqual(['a1']);
    expect(ids(selectedRows(toggleOne(selected, 'a1'), alice))).toEqual([]);
    expect(headerCheck(new Set(), [])).toBe('none');
  });
  it('says whose sessions an action ends', () => {
    expect(ownersSummary(table)).toBe('alice (2), bob');
    expect(ownersSummary(rows([session('x', null)]))).toBe('(no owner)');
    expect(bulkQuestion(table)).toBe('End 3 sessions: alice (2), bob?');
    expect(bulkQuestion(alice)).toBe("End alice's 2 sessions?");
    expect(bulkQuestion(table.slice(2))).toBe("End bob's session?");
    expect(bulkQuestion(rows([session('x', null)]))).toBe('End 1 session: (no owner)?');
  });
  it('counts the rows shown', () => {
    expect(countLabel(1, 1)).toBe('1 session');
    expect(countLabel(60, 60)).toBe('60 sessions');
    expect(countLabel(0, 1)).toBe('0 of 1 session');
    expect(countLabel(3, 60)).toBe('3 of 60 sessions');
  });
});

describe('endSessions', () => {
  it('ends each session, a few at a time, and reports every row', async () => {
    const running = new Set<string>();
    let most = 0;
    const log: string[] = [];
    const destroy = async (id: string): Promise<void> => {
      running.add(id);
      most = Math.max(most, running.size);
      await new Promise(resolve => setTimeout(resolve, 5));
      running.delete(id);
      if (id === 's3') {
        throw new ApiError(409, 'busy', 'the session is being snapshotted');
      }
      if (id === 's4') {
        throw new ApiError(404, 'not_found', 'no such session');
      }
    };
    const last = new Map<string, RowProgress>();
    const sixty = Array.from({ length: 60 }, (_, i) => `s${i}`);
    const result = await endSessions(sixty, destroy, (id, progress) => {
      log.push(`${id}:${progress.state}`);
      last.set(id, progress);
    });
    expect(result).toEqual({ ended: 59, failed: 1 });
    expect(most).toBe(4);
    expect(last.get('s3')).toEqual({ state: 'failed', error: 'the session is being snapshotted' });
    expect(last.get('s4')).toEqual({ state: 'ended' }); // already gone counts as ended
    expect(last.get('s59')).toEqual({ state: 'ended' });
    expect(log.indexOf('s0:waiting')).toBeLessThan(log.indexOf('s0:ending'));
    expect(log.indexOf('s0:ending')).toBeLessThan(log.indexOf('s0:ended'));
  });
  it('does nothing for no sessions, and reports a failure that is not an ApiError', async () => {
    expect(await endSessions([], async () => undefined, () => undefined)).toEqual({ ended: 0, failed: 0 });
    const last = new Map<string, RowProgress>();
    await endSessions(
      ['x'],
      async () => {
        throw new TypeError('network down');
      },
      (id, progress) => last.set(id, progress)
    );
    expect(last.get('x')).toEqual({ state: 'failed', error: 'network down' });
  });
});

describe('defaultView', () => {
  it("is the user's choice if made, else the table for many sessions", () => {
    expect(defaultView(null, TABLE_ABOVE)).toBe('cards');
    expect(defaultView(null, TABLE_ABOVE + 1)).toBe('table');
    expect(defaultView('cards', 60)).toBe('cards');
    expect(defaultView('table', 1)).toBe('table');
  });
});

describe('60 sessions', () => {
  it('sorts and filters a classroom in well under a frame', () => {
    const classroom = rows(
      Array.from({ length: 60 }, (_, i) =>
        session(`s${i}`, `student${i % 20}`, { last_active: 1_000_000 - i * 37, created_at: 1_000_000 - 5000 + i })
      )
    );
    const started = performance.now();
    for (let i = 0; i < 100; i++) {
      sortRows(filterRows(classroom, 'student1'), { key: 'idle', descending: true });
    }
    expect((performance.now() - started) / 100).toBeLessThan(5);
    expect(filterRows(classroom, 'student1,').length).toBe(33); // student1, student10..19: 11 owners, 3 each
  });
});
