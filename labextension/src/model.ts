/**
 * What the dashboard shows, refreshed every two seconds while it is visible.
 *
 * Each part (sessions, pool, workspaces, events, images) keeps its last good data
 * and its last error separately, so one failing route shows its error next to the
 * rest instead of blanking the panel. The images are asked for only while the
 * Images tab shows them (their listing asks Docker about every image).
 */
import { Signal } from '@lumino/signaling';
import { CpuSample, cpuPercent } from './format';
import { Images, Pool, SandkastenApi, SandkastenEvent, Session, Workspace } from './api';

export const REFRESH_MS = 2000;

export interface Part<T> {
  data: T | null;
  error: string | null;
}

function part<T>(): Part<T> {
  return { data: null, error: null };
}

export class DashboardModel {
  readonly changed = new Signal<this, void>(this);
  sessions: Part<Session[]> = part();
  pool: Part<Pool> = part();
  workspaces: Part<Workspace[]> = part();
  events: Part<SandkastenEvent[]> = part();
  images: Part<Images> = part();
  /** CPU % per session id, from the last two usage readings. */
  cpu = new Map<string, number | null>();
  private _samples = new Map<string, CpuSample>();
  private _timer: ReturnType<typeof setInterval> | null = null;
  private _refreshing: Promise<void> | null = null;
  private _watchingImages = false;

  constructor(readonly api: SandkastenApi) {}

  get polling(): boolean {
    return this._timer !== null;
  }

  /** Refresh now, then every REFRESH_MS until stop(). */
  start(): void {
    if (this._timer === null) {
      void this.refresh();
      this._timer = setInterval(() => void this.refresh(), REFRESH_MS);
    }
  }

  stop(): void {
    if (this._timer !== null) {
      clearInterval(this._timer);
      this._timer = null;
    }
  }

  /** One refresh of every part; a refresh still under way is joined, not doubled. */
  refresh(): Promise<void> {
    if (this._refreshing === null) {
      this._refreshing = this._refreshAll().finally(() => {
        this._refreshing = null;
      });
    }
    return this._refreshing;
  }

  /** Refresh the images too, from now on (the Images tab is open), or no longer. */
  watchImages(on: boolean): void {
    this._watchingImages = on;
    if (on) {
      void load(() => this.api.images(), this.images).then(images => {
        this.images = images;
        this.changed.emit();
      });
    }
  }

  dispose(): void {
    this.stop();
    Signal.clearData(this);
  }

  private async _refreshAll(): Promise<void> {
    const [sessions, pool, workspaces, events, images] = await Promise.all([
      load(() => this.api.sessions(), this.sessions),
      load(() => this.api.pool(), this.pool),
      load(() => this.api.workspaces(), this.workspaces),
      load(() => this.api.events(50), this.events),
      this._watchingImages ? load(() => this.api.images(), this.images) : Promise.resolve(this.images)
    ]);
    Object.assign(this, { sessions, pool, workspaces, events, images });
    this._updateCpu(this.sessions.data ?? []);
    this.changed.emit();
  }

  private _updateCpu(sessions: Session[]): void {
    const seen = new Set<string>();
    for (const session of sessions) {
      seen.add(session.id);
      const usage = session.usage;
      if (!usage) {
        continue;
      }
      const previous = this._samples.get(session.id);
      if (!previous || previous.sampled_at !== usage.sampled_at) {
        this.cpu.set(session.id, cpuPercent(previous, usage));
        this._samples.set(session.id, { cpu_ns: usage.cpu_ns, sampled_at: usage.sampled_at });
      }
    }
    for (const id of [...this._samples.keys()]) {
      if (!seen.has(id)) {
        this._samples.delete(id);
        this.cpu.delete(id);
      }
    }
  }
}

/** The part after one fetch: new data, or the last good data with the error. */
async function load<T>(fetch: () => Promise<T>, last: Part<T>): Promise<Part<T>> {
  try {
    return { data: await fetch(), error: null };
  } catch (error) {
    return { data: last.data, error: error instanceof Error ? error.message : String(error) };
  }
}
