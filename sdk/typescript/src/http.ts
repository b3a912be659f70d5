/** Sending calls: the token, JSON, errors as exceptions, retries where safe, NDJSON streams. */

import { ConnectionError, errorFor, streamError } from './errors.js';
import { DEFAULT_RETRY, mayResend, type RetryPolicy, retryDelayMs } from './retry.js';
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

/** The chunks of a reply's body; a connection that breaks meanwhile throws `ConnectionError`. */
async function* chunksOf(body: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  try {
    yield* body;
  } catch (error) {
    throw new ConnectionError(`the stream from the Sandkasten server broke: ${String(error)}`, { cause: error });
  }
}

export class Transport {
  private readonly root: string;
  private readonly headers: Record<string, string>;
  readonly timeoutMs: number;
  private readonly fetch: typeof fetch;
  private readonly retry: RetryPolicy;

  constructor(options: ClientOptions) {
    this.root = options.baseUrl.replace(/\/+$/, '') + '/sandkasten/api/';
    this.headers = { Authorization: `token ${options.apiKey}` };
    this.timeoutMs = options.timeoutMs ?? 120_000;
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.retry = {
      maxRetries: options.maxRetries ?? DEFAULT_RETRY.maxRetries,
      maxWaitMs: options.maxRetryWaitMs ?? DEFAULT_RETRY.maxWaitMs,
    };
  }

  /** The reply: parsed JSON, `undefined` when empty, bytes otherwise. Error replies throw. */
  async send(call: Call): Promise<unknown> {
    const response = await this.respond(call);
    const type = response.headers.get('Content-Type') ?? '';
    if (type.startsWith('application/json')) return response.json();
    const bytes = new Uint8Array(await response.arrayBuffer());
    return bytes.length ? bytes : undefined;
  }

  /**
   * The events of a streamed (NDJSON) reply, one object per line; an API error event (`{type: 'error',
   * error, message}`) throws. A stream has no timeout: a command or process may be silent for long.
   */
  async *events(call: Call): AsyncGenerator<Record<string, unknown>> {
    const response = await this.respond(call, false);
    if (!response.body) return;
    const decoder = new TextDecoder();
    let pending = '';
    const parse = (line: string) => {
      const event = JSON.parse(line) as Record<string, unknown>;
      if (event.type === 'error' && 'error' in event) throw streamError(event);
      return event;
    };
    const body = response.body as unknown as AsyncIterable<Uint8Array>;
    for await (const chunk of chunksOf(body)) {
      pending += decoder.decode(chunk, { stream: true });
      let newline: number;
      while ((newline = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, newline).trim();
        pending = pending.slice(newline + 1);
        if (line) yield parse(line);
      }
    }
    if (pending.trim()) yield parse(pending);
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
    let [retries, waitedMs] = [0, 0];
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
      if (response.status < 400) return response;
      const error = errorFor(response.status, await response.text());
      const delay = retryDelayMs(this.retry, response.status, response.headers.get('Retry-After'), retries, waitedMs);
      if (delay === undefined || !mayResend(call.method, error.code)) throw error;
      [retries, waitedMs] = [retries + 1, waitedMs + delay];
      await sleep(delay);
    }
  }
}
