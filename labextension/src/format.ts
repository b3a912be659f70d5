/**
 * Formatting for the dashboard's tables: sizes, durations, CPU, memory and network.
 * Pure functions (no JupyterLab imports), so the unit tests run them in node.
 */

import type { PoolSchedule, ScheduleEntry, Session } from './api';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 1536 -> "1.5 KiB"; null (not known) -> "–". */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) {
    return '–';
  }
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1;
  return `${value.toFixed(digits)} ${UNITS[unit]}`;
}

/** Seconds as the largest two units that matter: 42 -> "42s", 3725 -> "1h 2m". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) {
    return `${s}s`;
  }
  const minutes = Math.floor(s / 60);
  if (minutes < 60) {
    return `${minutes}m ${s % 60}s`;
  }
  const hours = Math.floor(minutes / 60);
  if (hours < 24) {
    return `${hours}h ${minutes % 60}m`;
  }
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

/** Seconds from an epoch time (seconds, as the API gives them) to `now` (ms, as Date.now()). */
export function secondsSince(epochSeconds: number, nowMs: number): number {
  return Math.max(0, nowMs / 1000 - epochSeconds);
}

/** One reading of a sandbox's cumulative CPU time (the API's `usage`). */
export interface CpuSample {
  cpu_ns: number;
  sampled_at: number;
}

/**
 * CPU use between two readings, in percent of one core (a busy 2-core sandbox
 * shows 200 %, as `top` does). Null when there is no earlier reading, the
 * readings are out of order, or the sandbox restarted (its counter went down).
 */
export function cpuPercent(previous: CpuSample | undefined, current: CpuSample): number | null {
  if (!previous) {
    return null;
  }
  const wall = current.sampled_at - previous.sampled_at;
  const used = current.cpu_ns - previous.cpu_ns;
  if (wall <= 0 || used < 0) {
    return null;
  }
  return (used / 1e9 / wall) * 100;
}

export function formatPercent(percent: number | null): string {
  if (percent === null) {
    return '–';
  }
  return percent < 10 ? `${percent.toFixed(1)} %` : `${Math.round(percent)} %`;
}

/** "120 MiB / 512 MiB (23 %)", or just the usage when there is no limit. */
export function formatMemory(bytes: number | null | undefined, limit: number | null | undefined): string {
  if (bytes === null || bytes === undefined) {
    return '–';
  }
  if (!limit) {
    return formatBytes(bytes);
  }
  return `${formatBytes(bytes)} / ${formatBytes(limit)} (${Math.round((bytes / limit) * 100)} %)`;
}

/** The share of the limit in use, 0 to 1, for the memory bar. */
export function memoryFraction(bytes: number | null | undefined, limit: number | null | undefined): number {
  if (!bytes || !limit) {
    return 0;
  }
  return Math.min(1, Math.max(0, bytes / limit));
}

/** A short id for tables: the first 8 characters. */
export function shortId(id: string): string {
  return id.length > 8 ? id.slice(0, 8) : id;
}

/** "sandkasten/runtime:python" -> "python": the name sandkasten.yaml uses. */
export function imageName(image: string): string {
  const tag = image.lastIndexOf(':');
  return image.startsWith('sandkasten/runtime:') && tag >= 0 ? image.slice(tag + 1) : image;
}

/** A session's network, for its card: "off", "open" or "3 allowed", the policy as a tooltip, and refusals. */
export interface NetworkSummary {
  label: string;
  title: string;
  /** Connections the filtering proxy refused so far (0 when none, or not known). */
  refused: number;
}

export function networkSummary(session: Pick<Session, 'network' | 'egress' | 'egress_refused'>): NetworkSummary {
  const refused = session.egress_refused ?? 0;
  const egress = session.egress;
  if (egress) {
    const lines = [`allow: ${egress.allow.join(', ') || '–'}`];
    if (egress.deny.length) {
      lines.push(`deny: ${egress.deny.join(', ')}`);
    }
    return { label: `${egress.allow.length} allowed`, title: lines.join('\n'), refused };
  }
  if (session.network) {
    return { label: 'open', title: 'no domain policy: filtered by IP ranges only', refused };
  }
  return { label: 'off', title: 'no network', refused };
}

/** "python 30, node 1–4": an entry's sizes. */
export function scheduleSizes(entry: ScheduleEntry): string {
  return Object.entries(entry.images)
    .map(([image, size]) => `${image} ${typeof size === 'number' ? size : `${size.min}–${size.max}`}`)
    .join(', ');
}

/** Epoch seconds as "Tue 08:00" in the schedule's zone (the browser's own when the server's is "local"). */
export function scheduleTime(epochSeconds: number, timezone: string): string {
  const options: Intl.DateTimeFormatOptions = { weekday: 'short', hour: '2-digit', minute: '2-digit', hour12: false };
  let format: Intl.DateTimeFormat;
  try {
    format = new Intl.DateTimeFormat('en-GB', { ...options, timeZone: timezone });
  } catch {
    format = new Intl.DateTimeFormat('en-GB', options);
  }
  return format.format(new Date(epochSeconds * 1000));
}

/** The schedule's two lines for the Pool tab: the entry that holds now, and the next change. */
export function scheduleLines(schedule: PoolSchedule): [string, string] {
  const { current, next, timezone } = schedule;
  const describe = (entry: ScheduleEntry): string => `entry ${entry.index}: ${entry.cron}`;
  return [
    current
      ? `Now: ${scheduleSizes(current)}, since ${scheduleTime(current.since, timezone)} (${describe(current)})`
      : 'Now: the configured sizes (no entry fired in the last week)',
    next
      ? `Next: ${scheduleSizes(next)}, at ${scheduleTime(next.at, timezone)} (${describe(next)})`
      : 'Next: no change within a week'
  ];
}
