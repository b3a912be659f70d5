/**
 * @sandkasten/client — the TypeScript client for a Sandkasten server.
 *
 *     import { SandboxClient } from '@sandkasten/client';
 *     const client = new SandboxClient({ baseUrl: '...', apiKey: '...' });
 *     const session = await client.createSession();
 *     const result = await session.exec('echo hello');
 */

export { ExecStream, SandboxClient, Session } from './client.js';
export { Process } from './processes.js';
export {
  AuthenticationError,
  BadRequestError,
  ConnectionError,
  ExecTimeout,
  NotFoundError,
  QuotaExceededError,
  SandkastenError,
  ServerError,
} from './errors.js';
export type {
  BackgroundExecOptions,
  ClientOptions,
  CodeError,
  CodeResult,
  CreateSessionOptions,
  EgressPolicy,
  ExecOptions,
  ExecResult,
  FileEntry,
  Limits,
  OutputCallback,
  PoolStatus,
  ProcessEvent,
  ProcessInfo,
  ProcessOptions,
  ProcessResult,
  RichResult,
  RunCodeOptions,
  SessionInfo,
  Snapshot,
  SnapshotOptions,
  StreamedExecOptions,
  WorkspaceInfo,
} from './types.js';
