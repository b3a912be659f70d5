/** `SandboxClient` and its `Session`. */

import { BadRequestError, ConnectionError, ExecTimeout, NotFoundError } from './errors.js';
import { type Call, Transport } from './http.js';
import { Process, processPath, runProcess, startProcess } from './processes.js';
import type {
  BackgroundExecOptions,
  ClientOptions,
  CodeError,
  CodeResult,
  CreateSessionOptions,
  ExecOptions,
  ExecResult,
  FileEntry,
  PoolStatus,
  ProcessInfo,
  ProcessResult,
  RichResult,
  RunCodeOptions,
  SessionInfo,
  Snapshot,
  SnapshotOptions,
  StreamedExecOptions,
  WorkspaceInfo,
} from './types.js';

function execBody(command: string, options: ExecOptions, stream: boolean): Record<string, unknown> {
  const body: Record<string, unknown> = { command };
  if (options.timeoutMs !== undefined) body.timeout_ms = options.timeoutMs;
  if (options.cwd !== undefined) body.cwd = options.cwd;
  if (options.env !== undefined) body.env = options.env;
  if (options.stdin !== undefined) body.stdin = options.stdin;
  if (options.ifBusy !== undefined) body.if_busy = options.ifBusy;
  if (stream) body.stream = true;
  return body;
}

/** Call back for each event of a streamed `runCode`; the `CodeResult` its `done` event carries. */
async function codeResult(
  events: AsyncIterable<Record<string, unknown>>,
  options: RunCodeOptions,
): Promise<CodeResult> {
  for await (const event of events) {
    if (event.type === 'stdout') await options.onStdout?.(String(event.text));
    else if (event.type === 'stderr') await options.onStderr?.(String(event.text));
    else if (event.type === 'result') await options.onResult?.(event as unknown as RichResult);
    else if (event.type === 'error') await options.onError?.(event as unknown as CodeError);
    else if (event.type === 'done') return event as unknown as CodeResult;
  }
  throw new ConnectionError('the runCode stream ended before its result');
}

function checked(result: ExecResult, options: ExecOptions): ExecResult {
  if (options.raiseOnTimeout && result.timed_out) {
    throw new ExecTimeout(`the command ran past its timeout (${Math.round(result.duration_ms)} ms)`, result);
  }
  return result;
}

const filePath = (id: string, path: string, kind = 'files') =>
  `sessions/${encodeURIComponent(id)}/${kind}/${path.replace(/^\/+/, '') || '.'}`;

const snapshotCall = (method: 'GET' | 'DELETE', name: string, options: SnapshotOptions): Call => ({
  method,
  path: `snapshots/${encodeURIComponent(name)}`,
  query: options.owner !== undefined ? { owner: options.owner } : undefined,
});

/** `for await (const chunk of stream)`: output as it comes; then `stream.result` is set. */
export class ExecStream implements AsyncIterable<string> {
  result?: ExecResult;
  private readonly chunks: string[] = [];

  constructor(
    private readonly events: AsyncGenerator<Record<string, unknown>>,
    private readonly options: ExecOptions,
  ) {}

  async *[Symbol.asyncIterator](): AsyncIterator<string> {
    for await (const event of this.events) {
      if (event.type === 'output') {
        const data = String(event.data);
        this.chunks.push(data);
        yield data;
      } else if (event.type === 'result') {
        this.result = checked({ ...(event as unknown as ExecResult), output: this.chunks.join('') }, this.options);
      }
    }
  }
}

/** A sandbox: a persistent bash shell, a Jupyter kernel and /workspace. */
export class Session {
  readonly id: string;

  constructor(
    private readonly transport: Transport,
    public info: SessionInfo,
  ) {
    this.id = info.id;
  }

  async refresh(): Promise<SessionInfo> {
    this.info = (await this.transport.send({ method: 'GET', path: `sessions/${this.id}` })) as SessionInfo;
    return this.info;
  }

  /**
   * Freeze the sandbox: nothing in it runs and its clocks stop, until `resume()`. Its shell, jobs, kernel
   * and files stay as they are; calls that need it throw `BadRequestError` with `code === 'session_paused'`
   * meanwhile. Throws with `code === 'session_busy'` while calls to it are under way.
   */
  async pause(): Promise<SessionInfo> {
    return this.act('pause');
  }

  /** Let the paused sandbox run on, as it was. */
  async resume(): Promise<SessionInfo> {
    return this.act('resume');
  }

  private async act(action: 'pause' | 'resume'): Promise<SessionInfo> {
    this.info = (await this.transport.send({ method: 'POST', path: `sessions/${this.id}/${action}` })) as SessionInfo;
    return this.info;
  }

  /**
   * Keep the session's files (its home directory, /tmp and /workspace) as your snapshot `name`, taken in one
   * freeze of the sandbox (a paused session stays paused); processes are not kept. `createSession({ snapshot })`
   * starts sessions holding them. Throws `BadRequestError` with `code` `snapshot_exists` for a name you have,
   * `session_busy` while calls are under way, `snapshot_too_large` past `quota.max_snapshot_mb`; and
   * `QuotaExceededError` past the other snapshot quotas.
   */
  async snapshot(name: string): Promise<Snapshot> {
    const call: Call = { method: 'POST', path: `sessions/${this.id}/snapshots`, json: { name } };
    return (await this.transport.send(call)) as Snapshot;
  }

  /**
   * `n` (1-16) new sessions, each with its own copy of this session's files as they are now, and its image,
   * limits and network; a named workspace is copied to a new one (`<name>-<6 hex>`). All or none: if one
   * cannot start, none is kept and the error is thrown.
   */
  async fork(n = 1): Promise<Session[]> {
    const call: Call = { method: 'POST', path: `sessions/${this.id}/fork`, json: { count: n } };
    const reply = (await this.transport.send(call)) as { sessions: SessionInfo[] };
    return reply.sessions.map((info) => new Session(this.transport, info));
  }

  /** Remove the sandbox (a named workspace stays). Destroying twice is not an error. */
  async destroy(): Promise<void> {
    try {
      await this.transport.send({ method: 'DELETE', path: `sessions/${this.id}` });
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
    }
  }

  /**
   * Run a command in the persistent shell: cd, variables and background jobs carry over. `ifBusy: 'process'`
   * runs it beside the shell while another exec has it (`ran_as: 'process'`) instead of throwing `shell_busy`.
   *
   * `background: true` starts it as a process beside the shell and resolves to its `Process` at once
   * (`wait()`, `kill()`, `sendStdin()`, its events). `onStdout`/`onStderr` run it as such a process, calling
   * back as its output comes, and resolve to a `ProcessResult` (stdout and stderr apart); with `background`
   * they are called while it runs. A process starts in /workspace (or `cwd`) with the sandbox's environment
   * plus `env`, not the shell's directory or variables.
   */
  async exec(command: string, options: BackgroundExecOptions): Promise<Process>;
  async exec(command: string, options: StreamedExecOptions): Promise<ProcessResult>;
  async exec(command: string, options?: ExecOptions): Promise<ExecResult>;
  async exec(
    command: string,
    options: ExecOptions | BackgroundExecOptions | StreamedExecOptions = {},
  ): Promise<ExecResult | ProcessResult | Process> {
    if ('background' in options && options.background) return startProcess(this.transport, this.id, command, options);
    const streamed = options as StreamedExecOptions;
    if (streamed.onStdout !== undefined || streamed.onStderr !== undefined) {
      return runProcess(this.transport, this.id, command, streamed);
    }
    const plain = options as ExecOptions;
    const call: Call = { method: 'POST', path: `sessions/${this.id}/exec`, json: execBody(command, plain, false) };
    return checked((await this.transport.send(call)) as ExecResult, plain);
  }

  execStream(command: string, options: ExecOptions = {}): ExecStream {
    const call: Call = { method: 'POST', path: `sessions/${this.id}/exec`, json: execBody(command, options, true) };
    return new ExecStream(this.transport.events(call), options);
  }

  /** The session's processes, running and recently ended (the last 64), oldest first. */
  async processes(): Promise<Process[]> {
    const reply = (await this.transport.send({ method: 'GET', path: `sessions/${this.id}/processes` })) as {
      processes: ProcessInfo[];
    };
    return reply.processes.map((info) => new Process(this.transport, this.id, info));
  }

  /** The process `pid` (running, or recently ended); `NotFoundError` if the sandbox has no such process. */
  async process(pid: number): Promise<Process> {
    const info = (await this.transport.send({ method: 'GET', path: processPath(this.id, pid) })) as ProcessInfo;
    return new Process(this.transport, this.id, info);
  }

  /**
   * Run code in the session's Jupyter kernel (variables persist). At most `maxOutput` bytes of output are
   * kept (the server's default: 1 MiB, as exec's); `truncated` in the result says when more was dropped.
   * With callbacks the outputs are streamed to them as they come: `onStdout`/`onStderr` the text,
   * `onResult` each rich output, `onError` the exception that ended the code.
   */
  async runCode(code: string, options: RunCodeOptions = {}): Promise<CodeResult> {
    const { onStdout, onStderr, onResult, onError } = options;
    const stream = [onStdout, onStderr, onResult, onError].some((callback) => callback !== undefined);
    const json: Record<string, unknown> = { code };
    if (options.timeoutMs !== undefined) json.timeout_ms = options.timeoutMs;
    if (options.maxOutput !== undefined) json.max_output = options.maxOutput;
    if (stream) json.stream = true;
    const call: Call = { method: 'POST', path: `sessions/${this.id}/run_code`, json };
    if (stream) return codeResult(this.transport.events(call), options);
    return (await this.transport.send(call)) as CodeResult;
  }

  /** Write text (UTF-8) or bytes under /workspace; parents are made. Returns the size. */
  async write(path: string, data: string | Uint8Array, options: { mode?: number } = {}): Promise<number> {
    const query = options.mode !== undefined ? { mode: options.mode.toString(8) } : undefined;
    const reply = (await this.transport.send({ method: 'PUT', path: filePath(this.id, path), body: data, query })) as {
      size: number;
    };
    return reply.size;
  }

  async read(path: string): Promise<string> {
    return new TextDecoder().decode(await this.readBytes(path));
  }

  async readBytes(path: string): Promise<Uint8Array> {
    const reply = await this.transport.send({ method: 'GET', path: filePath(this.id, path) });
    if (reply === undefined) return new Uint8Array();
    if (!(reply instanceof Uint8Array)) {
      throw new BadRequestError(`${path} is a directory: use list()`, { status: 409, code: 'is_a_directory' });
    }
    return reply;
  }

  /** Every entry of the directory, sorted by name (the API sends large ones in pages). */
  async list(path = '.'): Promise<FileEntry[]> {
    const entries: FileEntry[] = [];
    let query: Record<string, string> | undefined;
    for (;;) {
      const reply = await this.transport.send({ method: 'GET', path: filePath(this.id, path), query });
      if (reply instanceof Uint8Array || reply === undefined) {
        throw new BadRequestError(`${path} is a file: use read()`, { status: 409, code: 'not_a_directory' });
      }
      const page = reply as { entries: FileEntry[]; truncated?: boolean };
      entries.push(...page.entries);
      const last = page.entries.at(-1);
      if (!page.truncated || last === undefined) return entries;
      query = { after: last.name };
    }
  }

  async remove(path: string, options: { recursive?: boolean } = {}): Promise<void> {
    const query = options.recursive ? { recursive: 'true' } : undefined;
    await this.transport.send({ method: 'DELETE', path: filePath(this.id, path), query });
  }
}

/** The client. `await using`-free: call `createSession` and `session.destroy()` yourself. */
export class SandboxClient {
  readonly workspaces: {
    list(): Promise<WorkspaceInfo[]>;
    delete(name: string): Promise<void>;
  };
  readonly pool: { status(): Promise<PoolStatus> };
  private readonly transport: Transport;

  constructor(options: ClientOptions) {
    const transport = new Transport(options);
    this.transport = transport;
    this.workspaces = {
      async list() {
        const reply = (await transport.send({ method: 'GET', path: 'workspaces' })) as { workspaces: WorkspaceInfo[] };
        return reply.workspaces;
      },
      async delete(name: string) {
        await transport.send({ method: 'DELETE', path: `workspaces/${encodeURIComponent(name)}` });
      },
    };
    this.pool = {
      async status() {
        return (await transport.send({ method: 'GET', path: 'pool' })) as PoolStatus;
      },
    };
  }

  async createSession(options: CreateSessionOptions = {}): Promise<Session> {
    const { ttl, idleTimeout, withKernel, ...rest } = options;
    const json: Record<string, unknown> = { ...rest };
    if (ttl !== undefined) json.ttl_s = ttl;
    if (idleTimeout !== undefined) json.idle_timeout_s = idleTimeout;
    if (withKernel) json.with_kernel = true;
    return new Session(this.transport, (await this.transport.send({ method: 'POST', path: 'sessions', json })) as SessionInfo);
  }

  async getSession(id: string): Promise<Session> {
    const info = (await this.transport.send({ method: 'GET', path: `sessions/${encodeURIComponent(id)}` })) as SessionInfo;
    return new Session(this.transport, info);
  }

  async listSessions(): Promise<Session[]> {
    const reply = (await this.transport.send({ method: 'GET', path: 'sessions' })) as { sessions: SessionInfo[] };
    return reply.sessions.map((info) => new Session(this.transport, info));
  }

  /** Your snapshots, oldest first (an admin's list has everyone's, each with its `owner`). */
  async listSnapshots(): Promise<Snapshot[]> {
    const reply = (await this.transport.send({ method: 'GET', path: 'snapshots' })) as { snapshots: Snapshot[] };
    return reply.snapshots;
  }

  /** Your snapshot `name` (an admin names another user's with `owner`; `''`: the server's own). */
  async getSnapshot(name: string, options: SnapshotOptions = {}): Promise<Snapshot> {
    return (await this.transport.send(snapshotCall('GET', name, options))) as Snapshot;
  }

  /** Delete your snapshot `name` (`owner` as in `getSnapshot`); sessions made from it keep their files. */
  async deleteSnapshot(name: string, options: SnapshotOptions = {}): Promise<void> {
    await this.transport.send(snapshotCall('DELETE', name, options));
  }
}
