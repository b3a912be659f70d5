/** The error tree: every error the client throws on purpose is a SandkastenError. */

import type { ExecResult } from './types.js';

export class SandkastenError extends Error {
  /** HTTP status, when the server answered. */
  readonly status?: number;
  /** The API's stable error code (`not_found`, `quota_exceeded`, ...). */
  readonly code?: string;

  constructor(message: string, options: { status?: number; code?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = new.target.name;
    this.status = options.status;
    this.code = options.code;
  }
}

/** 400, 405, 409, 413: the message names what is wrong. */
export class BadRequestError extends SandkastenError {}
/** 401 no or wrong API key; 403 not allowed. */
export class AuthenticationError extends SandkastenError {}
/** 404: no such session (destroyed, reaped), file or workspace. */
export class NotFoundError extends SandkastenError {}
/** 429: over the server's quotas (sessions, workspaces, snapshots, processes). */
export class QuotaExceededError extends SandkastenError {}
/** 5xx: Docker or the engine is down, or the pool is exhausted (503). */
export class ServerError extends SandkastenError {}
/** The server cannot be reached (GET and DELETE were retried first), or a stream broke off. */
export class ConnectionError extends SandkastenError {}

/** A command ran past its timeout; thrown only with `raiseOnTimeout: true`. */
export class ExecTimeout extends SandkastenError {
  readonly result: ExecResult;

  constructor(message: string, result: ExecResult) {
    super(message, { code: 'timeout' });
    this.result = result;
  }
}

/** The error for an HTTP error reply (`{error, message}` JSON, or anything else). */
export function errorFor(status: number, body: string): SandkastenError {
  let code: string | undefined;
  let message = body.slice(0, 500) || `HTTP ${status}`;
  try {
    const parsed = JSON.parse(body) as { error?: string; message?: string };
    code = parsed.error;
    message = parsed.message ?? message;
  } catch {
    // not JSON: keep the text
  }
  const text = `${message} (HTTP ${status})`;
  const options = { status, code };
  if (status === 401 || status === 403) return new AuthenticationError(text, options);
  if (status === 404) return new NotFoundError(text, options);
  if (status === 429) return new QuotaExceededError(text, options);
  if (status >= 500) return new ServerError(text, options);
  if (status >= 400) return new BadRequestError(text, options);
  return new SandkastenError(text, options);
}

/** The error an API error event of a stream (`{type: 'error', error, message}`) stands for. */
export function streamError(event: Record<string, unknown>): SandkastenError {
  const status = event.error === 'not_found' ? 404 : 500;
  return errorFor(status, JSON.stringify({ error: event.error, message: event.message }));
}
