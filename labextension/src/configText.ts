/**
 * sandkasten.yaml in the Config tab: the effective settings shown as YAML, and
 * an edited text turned into the change the API applies (only what differs).
 */
import { parse, stringify, YAMLParseError } from 'yaml';

export type Mapping = Record<string, unknown>;

export function toYaml(config: Mapping): string {
  return stringify(config, { indent: 2, lineWidth: 0 });
}

export type Parsed = { ok: true; value: Mapping } | { ok: false; message: string; line: number | null };

/** The text as a mapping, or where and why it is not YAML (line numbers from 1). */
export function parseYaml(text: string): Parsed {
  try {
    const value: unknown = parse(text);
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      return { ok: false, message: 'sandkasten.yaml must be a mapping of keys to values', line: 1 };
    }
    return { ok: true, value: value as Mapping };
  } catch (error) {
    if (error instanceof YAMLParseError) {
      const line = error.linePos?.[0]?.line ?? null;
      return { ok: false, message: error.message.split('\n')[0], line };
    }
    return { ok: false, message: String(error), line: null };
  }
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function isMapping(value: unknown): value is Mapping {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * What changed from `original` to `edited`, in the shape PUT config takes:
 * top-level keys, and per section only the options that changed. A section
 * option that was removed is not a change (the server has no "unset").
 */
export function configChange(original: Mapping, edited: Mapping): Mapping {
  const change: Mapping = {};
  for (const [key, value] of Object.entries(edited)) {
    const before = original[key];
    if (isMapping(value) && isMapping(before)) {
      const section: Mapping = {};
      for (const [option, optionValue] of Object.entries(value)) {
        if (!same(before[option], optionValue)) {
          section[option] = optionValue;
        }
      }
      if (Object.keys(section).length > 0) {
        change[key] = section;
      }
    } else if (!same(before, value)) {
      change[key] = value;
    }
  }
  return change;
}

/**
 * The line of `text` where the key an API error names ("pool.images", or a
 * message quoting 'quota.max_sessions') is written, for marking it; null if none.
 */
export function lineOfKey(text: string, message: string): number | null {
  const named = /([a-z_]+)\.([a-z_]+)/.exec(message);
  const lines = text.split('\n');
  if (named) {
    const [, section, option] = named;
    let inSection = false;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      if (/^\S/.test(line)) {
        inSection = line.startsWith(`${section}:`);
      } else if (inSection && new RegExp(`^\\s+${option}:`).test(line)) {
        return i + 1;
      }
    }
  }
  const top = /\b([a-z_]+)\b/g;
  for (const match of message.matchAll(top)) {
    const index = lines.findIndex(line => line.startsWith(`${match[1]}:`));
    if (index >= 0) {
      return index + 1;
    }
  }
  return null;
}
