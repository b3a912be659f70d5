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
/** A process beside the shell, as the sandbox last saw it (`exec(..., { background: true })`). */
export type ProcessInfo = Schemas['Process'];
/** One event of a followed process: `started`/`exit` with `process`, or `output` with `stream`, `seq`, `data`. */
export type ProcessEvent = Schemas['ProcessEvent'];
/**
 * A process's output, stdout and stderr apart (what the sandbox kept: the last 1 MiB of each), and how it
 * stands (`process.running` when a wait ran out first); `exit_code` and `timed_out` are the process's.
 */
export type ProcessResult = Schemas['ProcessWaitResult'] & {
  exit_code: ProcessInfo['exit_code'];
  timed_out: boolean;
};
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
  /**
   * Seconds without a call after which the session is destroyed: at most the server's
   * `session.idle_timeout_s`; 0 (never) only with a `ttl`.
   */
  idleTimeout?: number;
  /** Your own names for the session (up to 64), in its `labels` and in listings. */
  labels?: Record<string, string>;
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

/** Called with each chunk of output text as it comes; a returned promise is awaited. */
export type OutputCallback = (text: string) => unknown;

export interface ExecOptions {
  timeoutMs?: number;
  cwd?: string;
  env?: Record<string, string>;
  stdin?: string;
  /** Throw `ExecTimeout` instead of returning a result with `timed_out: true`. */
  raiseOnTimeout?: boolean;
  /**
   * While another exec has the shell: `'error'` (the default) throws `BadRequestError` with `code ===
   * 'shell_busy'`; `'process'` runs this one as a process beside it (in /workspace or `cwd`, without the
   * shell's variables), and its result says `ran_as: 'process'`.
   */
  ifBusy?: 'error' | 'process';
}

/** What a process beside the shell is started with. It does not see the shell's directory or variables. */
export interface ProcessOptions {
  /** Kill it, and everything it started, after this long. */
  timeoutMs?: number;
  /** Where it starts (default /workspace). */
  cwd?: string;
  /** Added to the sandbox's environment. */
  env?: Record<string, string>;
  /** A label of yours, shown in `processes()`. */
  tag?: string;
  onStdout?: OutputCallback;
  onStderr?: OutputCallback;
}

/** `exec(command, { background: true })`: start a process and get its `Process` at once. */
export interface BackgroundExecOptions extends ProcessOptions {
  background: true;
  /** `true`: keep its stdin open for `sendStdin`; text: written to it, then closed. */
  stdin?: string | boolean;
}

/** `exec(command, { onStdout })`: run a process to its end, calling back as its output comes. */
export type StreamedExecOptions = ProcessOptions & {
  background?: false;
  stdin?: string;
  raiseOnTimeout?: boolean;
} & ({ onStdout: OutputCallback } | { onStderr: OutputCallback });

/** What `runCode` takes; with a callback its outputs are streamed to it as they come. */
export interface RunCodeOptions {
  timeoutMs?: number;
  maxOutput?: number;
  onStdout?: OutputCallback;
  onStderr?: OutputCallback;
  /** Each rich output (a display, the last expression's value). */
  onResult?: (result: RichResult) => unknown;
  /** The exception that ended the code. */
  onError?: (error: CodeError) => unknown;
}

export interface ClientOptions {
  /** The server's root, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** The server's token. */
  apiKey: string;
  /** Per-request timeout (default 120 s); streams have none. */
  timeoutMs?: number;
  /**
   * A request refused with 503 or 429 and `Retry-After` is sent again after that wait, this many times at
   * most (default 3; 0: never).
   */
  maxRetries?: number;
  /** ... and for this long in all, in milliseconds (default 10 000): a longer wait throws at once. */
  maxRetryWaitMs?: number;
  /** A `fetch` to use instead of the platform's. */
  fetch?: typeof fetch;
}
