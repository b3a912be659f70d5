/**
 * The API's types, taken from the generated `schema.ts` (openapi-typescript over the
 * server's OpenAPI document), so the client and the server cannot drift.
 */

import type { components } from './schema.js';

type Schemas = components['schemas'];

export type SessionInfo = Schemas['Session'];
export type ExecResult = Schemas['ExecResult'];
export type CodeResult = Schemas['CodeResult'];
export type RichResult = Schemas['RichResult'];
export type CodeError = Schemas['CodeError'];
export type FileEntry = Schemas['Entry'];
export type WorkspaceInfo = Schemas['Workspace'];
export type PoolStatus = Schemas['Pool'];
export type Limits = Schemas['Limits'];
/**
 * A session's files (home, /tmp, /workspace) kept under a name: `createSession({ snapshot: name })` starts
 * a session holding them, with the snapshot's image, limits and network. Processes are not kept.
 */
export type Snapshot = Schemas['Snapshot'];
/**
 * A domain policy: what a session with network may reach through the server's filtering proxy.
 * Entries are host names (`deb.debian.org`), wildcards for subdomains (`*.pythonhosted.org`, not the
 * name itself) or IPv4 networks (`10.20.0.0/16`); `deny` wins over `allow`.
 */
export type EgressPolicy = Schemas['EgressPolicy'];

/** What `createSession` takes: the API's `SessionCreate`, with `ttl` for `ttl_s`. */
export interface CreateSessionOptions {
  image?: string;
  workspace?: string;
  env?: Record<string, string>;
  limits?: Limits;
  /**
   * `true`: network as the server's configuration allows it; `false`: none; a policy such as
   * `{ allow: ['pypi.org', '*.pythonhosted.org'] }`: only that. A policy may narrow the server's
   * `security.egress`, never widen it (403 `not_allowed`, an `AuthenticationError`, naming the entry).
   */
  network?: boolean | EgressPolicy;
  /** Seconds until the session is destroyed. */
  ttl?: number;
  /** Start the session's Jupyter kernel now. */
  withKernel?: boolean;
  /**
   * One of your snapshots to start from: the session holds its files and gets its image, limits and network
   * unless asked for others (`image` must then be the snapshot's). Its workspace goes to a new place:
   * `workspace` if given (it must not exist yet), else a new named workspace when the snapshot's was one.
   */
  snapshot?: string;
}

/** Whose snapshot `getSnapshot` and `deleteSnapshot` mean. */
export interface SnapshotOptions {
  /** Another user's (admins only; default: yours); `''` names the server's own. */
  owner?: string;
}

export interface ExecOptions {
  timeoutMs?: number;
  cwd?: string;
  env?: Record<string, string>;
  stdin?: string;
  /** Throw `ExecTimeout` instead of returning a result with `timed_out: true`. */
  raiseOnTimeout?: boolean;
}

export interface ClientOptions {
  /** The server's root, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** The server's token. */
  apiKey: string;
  /** Per-request timeout (default 120 s). */
  timeoutMs?: number;
  /** A `fetch` to use instead of the platform's. */
  fetch?: typeof fetch;
}
