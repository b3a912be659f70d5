import { describe, expect, it } from 'vitest';
import { configChange, lineOfKey, parseYaml, toYaml } from '../src/configText';

const config = {
  listen: '127.0.0.1:8080',
  api_key: '********',
  pool: { enabled: true, images: { python: 2 } },
  quota: { max_sessions: 0, max_sessions_per_user: 0 }
};

describe('parseYaml', () => {
  it('reads back what toYaml wrote', () => {
    const parsed = parseYaml(toYaml(config));
    expect(parsed).toEqual({ ok: true, value: config });
  });
  it('says on which line the YAML breaks', () => {
    const parsed = parseYaml('pool:\n  images: {python: 2\nquota: 1\n');
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) {
      expect(parsed.line).toBeGreaterThanOrEqual(2);
      expect(parsed.message.length).toBeGreaterThan(0);
    }
  });
  it('wants a mapping', () => {
    expect(parseYaml('- a\n- b\n')).toMatchObject({ ok: false, line: 1 });
  });
});

describe('configChange', () => {
  it('is only what differs, per section option', () => {
    const edited = {
      ...config,
      pool: { enabled: true, images: { python: 3 } },
      quota: { max_sessions: 10, max_sessions_per_user: 0 }
    };
    expect(configChange(config, edited)).toEqual({ pool: { images: { python: 3 } }, quota: { max_sessions: 10 } });
  });
  it('is empty when nothing changed, and sends new top-level keys', () => {
    expect(configChange(config, config)).toEqual({});
    expect(configChange(config, { ...config, listen: '0.0.0.0:9000' })).toEqual({ listen: '0.0.0.0:9000' });
  });
});

describe('lineOfKey', () => {
  const text = toYaml(config);
  it('finds a section option an error names', () => {
    const line = lineOfKey(text, 'quota.max_sessions must be at least 0, not -5');
    expect(text.split('\n')[line! - 1]).toMatch(/^\s+max_sessions:/);
  });
  it('finds a top-level key, or nothing', () => {
    expect(lineOfKey(text, "listen must be host:port, not 'x'")).toBe(1);
    expect(lineOfKey(text, 'something else entirely')).toBeNull();
  });
});
