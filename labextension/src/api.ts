/**
 * The dashboard's client of the Sandkasten REST API (/sandkasten/api).
 *
 * It takes a `Send` function instead of calling fetch itself: in JupyterLab
 * that is ServerConnection.makeRequest (cookies, XSRF, the token), in the
 * unit tests plain fetch with the API key. Every failure becomes an
 * `ApiError` whose message is the server's own, for the panel to show.
 */

export type Send = (path: string, init?: RequestInit) => Promise<Response>;

export interface SessionUsage {
  pids: number;
  memory_bytes: number;
  memory_limit_bytes: number | null;
  cpu_ns: number;
  sampled_at: number;
}

/** A domain policy: what a session with network may reach through the filtering proxy (deny wins). */
export interface EgressPolicy {
  allow: string[];
  deny: string[];
}

export interface Session {
  id: string;
  image: string;
  owner: string | null;
  workspace: string | null;
  status: string;
  created_at: number;
  last_active: number;
  limits: { cpus?: number; memory_mb?: number; pids?: number };
  /** Whether the session has network at all. */
  network?: boolean;
  /** The domain policy in force; null: none (no network, or the open network). Absent from older servers. */
  egress?: EgressPolicy | null;
  /** Connections the filtering proxy refused so far. */
  egress_refused?: number;
  kernel_id?: string | null;
  kernel?: {
    id: string;
    execution_state?: string | null;
    connections?: number;
    /** Jupyter's time of the kernel's last message (ISO 8601). */
    last_activity?: string | null;
  } | null;
  usage?: SessionUsage | null;
}

export interface PoolImage {
  /** Warm sandboxes kept now: min, raised by misses up to max. */
  target: number;
  min: number;
  max: number;
  ready: number;
  starting: number;
  claims: number;
  misses: number;
  failed: number;
  last_error: string | null;
  history: [number, number][];
}

/** A `pool.schedule` entry as the pool's status shows it: sizes by image name (a count, or min and max). */
export interface ScheduleEntry {
  index: number;
  cron: string;
  images: Record<string, number | { min: number; max: number }>;
}

export interface PoolSchedule {
  /** An IANA name, or "local (UTC)" for the server's own zone. */
  timezone: string;
  /** The entry that holds now, since (epoch seconds) it fired; null: none within the last week. */
  current: (ScheduleEntry & { since: number }) | null;
  /** The next change (epoch seconds); null: none within a week. */
  next: (ScheduleEntry & { at: number }) | null;
}

export interface Pool {
  enabled: boolean;
  images: Record<string, PoolImage>;
  /** null or absent: no `pool.schedule`. */
  schedule?: PoolSchedule | null;
}

export interface Workspace {
  name: string;
  /** The user it belongs to; null: the server's own (absent from servers before workspaces had owners). */
  owner?: string | null;
  size_bytes: number | null;
  in_use_by: string[];
  last_used: number | null;
}

/** An image sessions may be made from: built in, or added on the host with `sandkasten images add`. */
export interface ImageInfo {
  name: string;
  tag: string;
  kind: 'builtin' | 'dockerfile' | 'from';
  parent: string | null;
  source?: string | null;
  state: 'current' | 'outdated' | 'missing' | 'building' | 'failed';
  error: string | null;
  size_bytes: number | null;
  /** Whether it has ipykernel (a Jupyter kernel). */
  kernel: boolean;
  /** Whether security.allowed_images lets sessions use it. */
  allowed: boolean;
  /** Whether a session or the warm pool uses it (it cannot be removed then). */
  in_use: boolean;
  added_at?: number | null;
  added_by?: string | null;
}

export interface Images {
  images: ImageInfo[];
  /** Whether the caller may remove added images. */
  admin: boolean;
}

export interface ConfigView {
  path: string | null;
  writable: boolean;
  config: Record<string, unknown>;
}

export interface ConfigChanged {
  path: string;
  config: Record<string, unknown>;
  applied: string[];
  restart_required: string[];
}

export interface SandkastenEvent {
  seq: number;
  at: number;
  session_id: string | null;
  kind: string;
  detail: Record<string, unknown>;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const API_PATH = 'sandkasten/api';

export class SandkastenApi {
  constructor(private readonly send: Send) {}

  async sessions(): Promise<Session[]> {
    return (await this.json<{ sessions: Session[] }>('GET', 'sessions?usage=true')).sessions;
  }

  async destroySession(id: string): Promise<void> {
    await this.json('DELETE', `sessions/${encodeURIComponent(id)}`);
  }

  /** Freeze the session (nothing in it runs; its memory stays); the record comes back with status "paused". */
  async pauseSession(id: string): Promise<Session> {
    return this.json<Session>('POST', `sessions/${encodeURIComponent(id)}/pause`);
  }

  async resumeSession(id: string): Promise<Session> {
    return this.json<Session>('POST', `sessions/${encodeURIComponent(id)}/resume`);
  }

  async images(): Promise<Images> {
    return this.json<Images>('GET', 'images');
  }

  /** Remove an added image (admins only; refused while a session or the pool uses it). */
  async removeImage(name: string): Promise<void> {
    await this.json('DELETE', `images/${encodeURIComponent(name)}`);
  }

  async pool(): Promise<Pool> {
    return this.json<Pool>('GET', 'pool');
  }

  /** `image` as sandkasten.yaml names it ("python"), not the full reference pool() lists;
   * `size` a count, or a floor and a ceiling the pool moves between with demand. */
  async setPoolSize(image: string, size: number | { min: number; max: number }): Promise<Pool> {
    return this.json<Pool>('PUT', 'pool', { images: { [image]: size } });
  }

  async workspaces(): Promise<Workspace[]> {
    return (await this.json<{ workspaces: Workspace[] }>('GET', 'workspaces')).workspaces;
  }

  /** `owner` as the listing gave it: names are per user, so an admin says whose (null: the server's own). */
  async deleteWorkspace(name: string, owner?: string | null): Promise<void> {
    const whose = owner === undefined ? '' : `?owner=${encodeURIComponent(owner ?? '')}`;
    await this.json('DELETE', `workspaces/${encodeURIComponent(name)}${whose}`);
  }

  async config(): Promise<ConfigView> {
    return this.json<ConfigView>('GET', 'config');
  }

  async changeConfig(change: Record<string, unknown>): Promise<ConfigChanged> {
    return this.json<ConfigChanged>('PUT', 'config', change);
  }

  async events(limit = 50): Promise<SandkastenEvent[]> {
    return (await this.json<{ events: SandkastenEvent[] }>('GET', `events?limit=${limit}`)).events;
  }

  async listFiles(sessionId: string, path: string): Promise<FileEntry[]> {
    const listing = await this.json<{ entries: FileEntry[] }>('GET', filesPath(sessionId, path));
    return listing.entries;
  }

  async readText(sessionId: string, path: string): Promise<string> {
    const response = await this.call('GET', filesPath(sessionId, path));
    return response.text();
  }

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await this.call(method, path, body);
    const text = await response.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  private async call(method: string, path: string, body?: unknown): Promise<Response> {
    const init: RequestInit = { method };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { 'Content-Type': 'application/json' };
    }
    let response: Response;
    try {
      response = await this.send(path, init);
    } catch (error) {
      throw new ApiError(0, 'unreachable', `the server did not answer: ${String(error)}`);
    }
    if (!response.ok) {
      throw await errorOf(response);
    }
    return response;
  }
}

export interface FileEntry {
  name: string;
  type: 'file' | 'directory' | 'symlink' | 'other';
  size: number;
  mtime: number;
}

function filesPath(sessionId: string, path: string): string {
  const parts = path.split('/').filter(part => part.length > 0).map(encodeURIComponent);
  return `sessions/${encodeURIComponent(sessionId)}/files/${parts.join('/')}`;
}

/** The API's `{error, message}` body as an ApiError; anything else says what came back. */
export async function errorOf(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { error?: unknown; message?: unknown };
    if (typeof body.message === 'string') {
      return new ApiError(response.status, String(body.error ?? 'error'), body.message);
    }
  } catch {
    // not JSON: fall through
  }
  const reason = text.trim().slice(0, 200) || response.statusText;
  return new ApiError(response.status, 'error', `HTTP ${response.status}: ${reason}`);
}
