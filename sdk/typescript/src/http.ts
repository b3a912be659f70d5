/** Sending calls: the token, JSON, errors as exceptions, retries where safe, NDJSON streams. */

import { ConnectionError, errorFor } from './errors.js';
import type { ClientOptions } from './types.js';

const RETRY_DELAYS_MS = [200, 500, 1000]; // connection problems, GET and DELETE only
const SAFE_TO_RETRY = new Set(['GET', 'DELETE']);

export interface Call {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string; // relative to /sandkasten/api/
  json?: unknown;
  body?: Uint8Array | string;
  query?: Record<string, string>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class Transport {
  private readonly root: string;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;
  private readonly fetch: typeof fetch;

  constructor(options: ClientOptions) {
    this.root = options.baseUrl.replace(/\/+$/, '') + '/sandkasten/api/';
    this.headers = { Authorization: `token ${options.apiKey}` };
    this.timeoutMs = options.timeoutMs ?? 120_000;
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** The reply: parsed JSON, `undefined` when empty, bytes otherwise. Error replies throw. */
  async send(call: Call): Promise<unknown> {
    const response = await this.respond(call);
    const type = response.headers.get('Content-Type') ?? '';
    if (type.startsWith('application/json')) return response.json();
    const bytes = new Uint8Array(await response.arrayBuffer());
    return bytes.length ? bytes : undefined;
  }

  /** The events of a streamed (NDJSON) reply, one object per line. */
  async *events(call: Call): AsyncGenerator<Record<string, unknown>> {
    const response = await this.respond(call, false);
    if (!response.body) return;
    const decoder = new TextDecoder();
    let pending = '';
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      pending += decoder.decode(chunk, { stream: true });
      let newline: number;
      while ((newline = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, newline).trim();
        pending = pending.slice(newline + 1);
        if (line) yield JSON.parse(line) as Record<string, unknown>;
      }
    }
    if (pending.trim()) yield JSON.parse(pending) as Record<string, unknown>;
  }

  private async respond(call: Call, withTimeout = true): Promise<Response> {
    const url = new URL(call.path, this.root);
    for (const [name, value] of Object.entries(call.query ?? {})) url.searchParams.set(name, value);
    const headers: Record<string, string> = { ...this.headers };
    let body: BodyInit | undefined;
    if (call.json !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(call.json);
    } else if (call.body !== undefined) {
      headers['Content-Type'] = 'application/octet-stream';
      body = call.body as BodyInit;
    }
    const delays = SAFE_TO_RETRY.has(call.method) ? RETRY_DELAYS_MS : [];
    for (let attempt = 0; ; attempt++) {
      let response: Response;
      try {
        response = await this.fetch(url, {
          method: call.method,
          headers,
          body,
          signal: withTimeout ? AbortSignal.timeout(this.timeoutMs) : undefined,
        });
      } catch (error) {
        const delay = delays[attempt];
        if (delay === undefined) {
          throw new ConnectionError(`cannot reach the Sandkasten server at ${this.root}: ${String(error)}`, {
            cause: error,
          });
        }
        await sleep(delay);
        continue;
      }
      if (response.status >= 400) throw errorFor(response.status, await response.text());
      return response;
    }
  }
}
