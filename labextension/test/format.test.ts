import { describe, expect, it } from 'vitest';
import {
  cpuPercent,
  formatBytes,
  formatDuration,
  formatMemory,
  formatPercent,
  imageName,
  memoryFraction,
  networkSummary,
  scheduleLines,
  scheduleTime,
  secondsSince,
  shortId
} from '../src/format';

describe('formatBytes', () => {
  it('picks the unit and keeps one decimal below 100', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(512 * 1024 * 1024)).toBe('512 MiB');
    expect(formatBytes(3 * 1024 ** 3)).toBe('3.0 GiB');
  });
  it('says nothing is known for null', () => {
    expect(formatBytes(null)).toBe('–');
    expect(formatBytes(undefined)).toBe('–');
  });
});

describe('formatDuration', () => {
  it('shows the two largest units', () => {
    expect(formatDuration(42.9)).toBe('42s');
    expect(formatDuration(125)).toBe('2m 5s');
    expect(formatDuration(3725)).toBe('1h 2m');
    expect(formatDuration(90000)).toBe('1d 1h');
    expect(formatDuration(-3)).toBe('0s');
  });
  it('measures from epoch seconds to a Date.now()', () => {
    expect(secondsSince(1000, 1_010_000)).toBe(10);
    expect(secondsSince(2000, 1_000_000)).toBe(0);
  });
});

describe('cpuPercent', () => {
  it('is CPU time over wall time between two readings, in percent of a core', () => {
    const first = { cpu_ns: 1e9, sampled_at: 100 };
    expect(cpuPercent(first, { cpu_ns: 2e9, sampled_at: 102 })).toBe(50);
    expect(cpuPercent(first, { cpu_ns: 5e9, sampled_at: 102 })).toBe(200);
  });
  it('is unknown without an earlier reading, out of order, or after a restart', () => {
    expect(cpuPercent(undefined, { cpu_ns: 1, sampled_at: 1 })).toBeNull();
    expect(cpuPercent({ cpu_ns: 1, sampled_at: 5 }, { cpu_ns: 2, sampled_at: 5 })).toBeNull();
    expect(cpuPercent({ cpu_ns: 9e9, sampled_at: 1 }, { cpu_ns: 1e9, sampled_at: 3 })).toBeNull();
  });
  it('formats small values with a decimal', () => {
    expect(formatPercent(3.14159)).toBe('3.1 %');
    expect(formatPercent(57.6)).toBe('58 %');
    expect(formatPercent(null)).toBe('–');
  });
});

describe('memory', () => {
  it('shows usage against the limit', () => {
    expect(formatMemory(128 * 1024 ** 2, 512 * 1024 ** 2)).toBe('128 MiB / 512 MiB (25 %)');
    expect(formatMemory(2048, null)).toBe('2.0 KiB');
    expect(formatMemory(undefined, 10)).toBe('–');
  });
  it('fills the bar to the share of the limit, capped', () => {
    expect(memoryFraction(1, 4)).toBe(0.25);
    expect(memoryFraction(8, 4)).toBe(1);
    expect(memoryFraction(1, null)).toBe(0);
  });
});

describe('names', () => {
  it('shortens ids and images', () => {
    expect(shortId('0123456789ab')).toBe('01234567');
    expect(shortId('abc')).toBe('abc');
    expect(imageName('sandkasten/runtime:python')).toBe('python');
    expect(imageName('debian:bookworm')).toBe('debian:bookworm');
  });
});

describe('networkSummary', () => {
  it('says off, open, or how many entries the policy allows', () => {
    expect(networkSummary({ network: false, egress: null, egress_refused: 0 })).toEqual({
      label: 'off',
      title: 'no network',
      refused: 0
    });
    expect(networkSummary({ network: true, egress: null, egress_refused: 0 }).label).toBe('open');
    const policy = { allow: ['pypi.org', '*.pythonhosted.org', '10.20.0.0/16'], deny: ['evil.pypi.org'] };
    expect(networkSummary({ network: true, egress: policy, egress_refused: 4 })).toEqual({
      label: '3 allowed',
      title: 'allow: pypi.org, *.pythonhosted.org, 10.20.0.0/16\ndeny: evil.pypi.org',
      refused: 4
    });
    expect(networkSummary({ network: true, egress: { allow: ['a.org'], deny: [] } }).title).toBe('allow: a.org');
  });
  it('reads a server that predates domain policies', () => {
    expect(networkSummary({})).toEqual({ label: 'off', title: 'no network', refused: 0 });
    expect(networkSummary({ network: true }).label).toBe('open');
  });
});

describe('scheduleLines', () => {
  const morning = { index: 0, cron: '0 8 * * 1-5', images: { python: 30 } };
  const later = { index: 1, cron: '0 10 * * 1-5', images: { python: { min: 1, max: 4 }, node: 2 } };
  // Tuesday 2026-12-01 07:00 and 09:00 UTC: 08:00 and 10:00 in Berlin.
  const schedule = {
    timezone: 'Europe/Berlin',
    current: { ...morning, since: Date.UTC(2026, 11, 1, 7) / 1000 },
    next: { ...later, at: Date.UTC(2026, 11, 1, 9) / 1000 }
  };

  it('says what holds now and what changes next, in the schedule\'s zone', () => {
    expect(scheduleLines(schedule)).toEqual([
      'Now: python 30, since Tue 08:00 (entry 0: 0 8 * * 1-5)',
      'Next: python 1–4, node 2, at Tue 10:00 (entry 1: 0 10 * * 1-5)'
    ]);
  });

  it('says so when no entry holds or none comes within a week', () => {
    expect(scheduleLines({ ...schedule, current: null, next: null })).toEqual([
      'Now: the configured sizes (no entry fired in the last week)',
      'Next: no change within a week'
    ]);
  });

  it('falls back to the browser\'s zone for the server\'s local one', () => {
    expect(scheduleTime(schedule.next.at, 'local (UTC)')).toMatch(/^Tue \d\d:00$/);
  });
});
