/**
 * Processes beside the shell: `Process`, the handle `exec(..., { background: true })` gives, and the streamed
 * run behind `exec(..., { onStdout })`. A process outlives the request that started it; its output is kept
 * in the sandbox (the last 1 MiB) as numbered chunks, so any client can follow it from any `seq`.
 */

import { BadRequestError, ConnectionError, ExecTimeout } from './errors.js';
import type { Call, Transport } from './http.js';
import type { ExecResult, OutputCallback, ProcessEvent, ProcessInfo, ProcessOptions, ProcessResult } from './types.js';

/** The longest one wait request waits (at most half the client's timeout): longer waits take several. */
const WAIT_SLICE_MS = 50_000;

export const processPath = (sessionId: string, pid: number, action = '') =>
  `sessions/${encodeURIComponent(sessionId)}/processes/${pid}${action ? `/${action}` : ''}`;

export const resultOf = (reply: { process: ProcessInfo; stdout: string; stderr: string }): ProcessResult => ({
  ...reply,
  exit_code: reply.process.exit_code,
  timed_out: reply.process.timed_out,
});

/** A followed process's output, per stream and in order, handed to the callbacks as it comes. */
class Output {
  private readonly streams: Record<'stdout' | 'stderr', string[]> = { stdout: [], stderr: [] };
  private readonly merged: string[] = [];
  private final?: ProcessInfo;

  constructor(private readonly callbacks: { onStdout?: OutputCallback; onStderr?: OutputCallback }) {}

  async take(event: ProcessEvent): Promise<void> {
    if (event.type === 'output' && event.stream !== undefined && event.data !== undefined) {
      this.streams[event.stream].push(event.data);
      this.merged.push(event.data);
      await (event.stream === 'stdout' ? this.callbacks.onStdout : this.callbacks.onStderr)?.(event.data);
    } else if (event.process !== undefined) {
      this.final = event.process;
    }
  }

  async drain(events: AsyncIterable<Record<string, unknown>>): Promise<ProcessResult> {
    for await (const event of events) await this.take(event as unknown as ProcessEvent);
    return this.result();
  }

  result(): ProcessResult {
    if (this.final === undefined) throw new ConnectionError("the process's events ended before it did");
    const [stdout, stderr] = [this.streams.stdout.join(''), this.streams.stderr.join('')];
    return resultOf({ process: this.final, stdout, stderr });
  }

  /** `ExecTimeout` for a process killed at its timeout, with stdout and stderr as they came. */
  timeoutError(result: ProcessResult): ExecTimeout {
    const output = this.merged.join('');
    const { started_at: started, ended_at: ended, dropped_bytes: dropped } = result.process;
    const durationMs = ((ended ?? started) - started) * 1000;
    const execResult: ExecResult = {
      output,
      exit_code: null,
      timed_out: true,
      truncated: dropped > 0,
      duration_ms: durationMs,
      output_bytes: new TextEncoder().encode(output).length,
      ran_as: 'process',
    };
    return new ExecTimeout(`the command ran past its timeout (${Math.round(durationMs)} ms)`, execResult);
  }
}

/** A process started beside the shell. `for await (const event of process)`: its events from the start. */
export class Process implements AsyncIterable<ProcessEvent> {
  readonly pid: number;
  /** Callbacks given at the start, following it meanwhile; `wait()` lets them finish. */
  follower?: Promise<ProcessResult>;

  constructor(
    private readonly transport: Transport,
    readonly sessionId: string,
    public info: ProcessInfo,
  ) {
    this.pid = info.pid;
  }

  private call(method: Call['method'], action = '', json?: unknown): Call {
    return { method, path: processPath(this.sessionId, this.pid, action), json };
  }

  private async act(call: Call): Promise<ProcessInfo> {
    this.info = (await this.transport.send(call)) as ProcessInfo;
    return this.info;
  }

  /** Fetch how it stands now (`info`). */
  async refresh(): Promise<ProcessInfo> {
    return this.act(this.call('GET'));
  }

  /**
   * Its output chunks numbered after `after` (0: all it keeps), what it writes from then on, and its `exit`
   * event. Stopping early only stops following: the process runs on.
   */
  async *events(options: { after?: number } = {}): AsyncGenerator<ProcessEvent> {
    const call = { ...this.call('GET', 'events'), query: { after: String(options.after ?? 0) } };
    for await (const data of this.transport.events(call)) {
      const event = data as unknown as ProcessEvent;
      if (event.process !== undefined) this.info = event.process;
      yield event;
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<ProcessEvent> {
    return this.events();
  }

  /** Follow it to its end from chunk `after` on, calling back as its output comes; the output followed. */
  async follow(
    options: { onStdout?: OutputCallback; onStderr?: OutputCallback; after?: number } = {},
  ): Promise<ProcessResult> {
    const output = new Output(options);
    for await (const event of this.events({ after: options.after })) await output.take(event);
    return output.result();
  }

  /**
   * Wait until it ends, or `timeoutMs` passes (then `result.process.running` is true); its output as kept.
   * Callbacks given at its start have all been called once this resolves to an ended result.
   */
  async wait(options: { timeoutMs?: number } = {}): Promise<ProcessResult> {
    const deadline = options.timeoutMs === undefined ? undefined : Date.now() + options.timeoutMs;
    const slice = Math.min(WAIT_SLICE_MS, this.transport.timeoutMs / 2);
    let result: ProcessResult;
    for (;;) {
      const left = deadline === undefined ? slice : Math.max(0, Math.min(slice, deadline - Date.now()));
      const reply = await this.transport.send(this.call('POST', 'wait', { timeout_ms: Math.round(left) }));
      result = resultOf(reply as ProcessResult);
      this.info = result.process;
      if (!result.process.running || (deadline !== undefined && Date.now() >= deadline)) break;
    }
    if (!result.process.running && this.follower !== undefined) await this.follower;
    return result;
  }

  /**
   * Write text to its stdin (it was started with `stdin: true`); `eof` closes it after. `BadRequestError`
   * with `code` `stdin_closed` once it is closed or the process has ended, `stdin_full` when the process has
   * not read it for 20 s.
   */
  async sendStdin(data: string, options: { eof?: boolean } = {}): Promise<ProcessInfo> {
    return this.act(this.call('POST', 'stdin', { data, eof: options.eof ?? false }));
  }

  /** Close its stdin: the process reads end of file. */
  async closeStdin(): Promise<ProcessInfo> {
    return this.sendStdin('', { eof: true });
  }

  /** Send a signal (`'SIGTERM'`, `'TERM'`, `15`, ...) to it and every process it started. */
  async signal(signal: string | number): Promise<ProcessInfo> {
    return this.act(this.call('POST', 'signal', { signal }));
  }

  /** SIGKILL to it and every process it started (it may take a moment to show as ended). */
  async kill(): Promise<ProcessInfo> {
    return this.act(this.call('DELETE'));
  }
}

/** Write text to a new process's stdin and close it; a process that ended or closed it first gets what it read. */
async function feed(process: Process, data: string): Promise<void> {
  try {
    await process.sendStdin(data, { eof: true });
  } catch (error) {
    if (!(error instanceof BadRequestError && error.code === 'stdin_closed')) throw error;
  }
}

function startCall(sessionId: string, command: string, options: ProcessOptions, stdin: boolean, stream: boolean): Call {
  const json: Record<string, unknown> = { command };
  if (options.timeoutMs !== undefined) json.timeout_ms = options.timeoutMs;
  if (options.cwd !== undefined) json.cwd = options.cwd;
  if (options.env !== undefined) json.env = options.env;
  if (options.tag !== undefined) json.tag = options.tag;
  if (stdin) json.stdin = true;
  if (stream) json.stream = true;
  return { method: 'POST', path: `sessions/${encodeURIComponent(sessionId)}/processes`, json };
}

/** Start a process with its events in the reply: its handle, and the events after `started`. */
async function startStreamed(
  transport: Transport,
  sessionId: string,
  call: Call,
): Promise<[Process, AsyncGenerator<Record<string, unknown>>]> {
  const events = transport.events(call);
  const first = await events.next();
  const event = first.done ? undefined : (first.value as unknown as ProcessEvent);
  if (event?.type !== 'started' || event.process === undefined) {
    await events.return(undefined);
    throw new ConnectionError(`the server's stream began with ${JSON.stringify(event)}, not with the process started`);
  }
  return [new Process(transport, sessionId, event.process), events];
}

/**
 * Start a process and return its handle; with callbacks, it is followed meanwhile (`wait()` lets them
 * finish). `stdin`: `true` keeps it open for `sendStdin`; text is written to it, then it is closed.
 */
export async function startProcess(
  transport: Transport,
  sessionId: string,
  command: string,
  options: ProcessOptions & { stdin?: string | boolean },
): Promise<Process> {
  const follow = options.onStdout !== undefined || options.onStderr !== undefined;
  const stdin = options.stdin !== undefined && options.stdin !== false;
  const call = startCall(sessionId, command, options, stdin, follow);
  let process: Process;
  if (follow) {
    const [started, events] = await startStreamed(transport, sessionId, call);
    process = started;
    process.follower = new Output(options).drain(events);
    process.follower.catch(() => undefined); // thrown from wait(); unhandled meanwhile would end node
  } else {
    process = new Process(transport, sessionId, (await transport.send(call)) as ProcessInfo);
  }
  if (typeof options.stdin === 'string') await feed(process, options.stdin);
  return process;
}

/** Run a process to its end, calling back as its output comes; stdout and stderr apart. */
export async function runProcess(
  transport: Transport,
  sessionId: string,
  command: string,
  options: ProcessOptions & { stdin?: string; raiseOnTimeout?: boolean },
): Promise<ProcessResult> {
  const call = startCall(sessionId, command, options, options.stdin !== undefined, true);
  const [process, events] = await startStreamed(transport, sessionId, call);
  // Written meanwhile: the process may read its input only as it writes its output.
  const feeding = options.stdin !== undefined ? feed(process, options.stdin) : undefined;
  feeding?.catch(() => undefined); // awaited below, once the output is read
  const output = new Output(options);
  const result = await output.drain(events);
  await feeding;
  if (options.raiseOnTimeout && result.timed_out) throw output.timeoutError(result);
  return result;
}
