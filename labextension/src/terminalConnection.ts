/**
 * A terminal connection onto a sandbox, for JupyterLab's own terminal widget.
 *
 * The widget talks to an ITerminalConnection; this one opens the extension's
 * websocket sessions/{id}/terminal (an interactive bash in the sandbox)
 * instead of Jupyter's host terminals, which `sandkasten serve` turns off.
 * The messages are the same terminado arrays, so the widget needs no change.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection, Terminal } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';
import { API_PATH } from './api';
import { shortId } from './format';

export function terminalUrl(settings: ServerConnection.ISettings, sessionId: string): string {
  const url = URLExt.join(settings.wsUrl, API_PATH, 'sessions', encodeURIComponent(sessionId), 'terminal');
  // The browser cannot send an Authorization header on a websocket: the token goes in the query.
  return settings.token ? `${url}?token=${encodeURIComponent(settings.token)}` : url;
}

export class SandboxTerminalConnection implements Terminal.ITerminalConnection {
  readonly model: Terminal.IModel;
  private _socket: WebSocket | null = null;
  private _status: Terminal.ConnectionStatus = 'connecting';
  private _disposed = new Signal<this, void>(this);
  private _messageReceived = new Signal<this, Terminal.IMessage>(this);
  private _statusChanged = new Signal<this, Terminal.ConnectionStatus>(this);
  private _isDisposed = false;

  constructor(
    readonly sessionId: string,
    readonly serverSettings: ServerConnection.ISettings
  ) {
    this.model = { name: `sandbox ${shortId(sessionId)}` };
    this._connect();
  }

  get name(): string {
    return this.model.name;
  }
  get messageReceived(): ISignal<this, Terminal.IMessage> {
    return this._messageReceived;
  }
  get connectionStatus(): Terminal.ConnectionStatus {
    return this._status;
  }
  get connectionStatusChanged(): ISignal<this, Terminal.ConnectionStatus> {
    return this._statusChanged;
  }
  get disposed(): ISignal<this, void> {
    return this._disposed;
  }
  get isDisposed(): boolean {
    return this._isDisposed;
  }

  send(message: Terminal.IMessage): void {
    if (this._socket?.readyState === WebSocket.OPEN) {
      this._socket.send(JSON.stringify([message.type, ...(message.content ?? [])]));
    }
  }

  async reconnect(): Promise<void> {
    this._close();
    this._connect();
  }

  /** Ends the terminal: closing the socket kills what runs in it. */
  async shutdown(): Promise<void> {
    this.dispose();
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    this._close();
    this._disposed.emit();
    Signal.clearData(this);
  }

  private _connect(): void {
    this._setStatus('connecting');
    const socket = new this.serverSettings.WebSocket(terminalUrl(this.serverSettings, this.sessionId));
    socket.onopen = () => this._setStatus('connected');
    socket.onmessage = (event: MessageEvent) => {
      const [type, ...content] = JSON.parse(String(event.data)) as [Terminal.MessageType, ...(string | number | null)[]];
      this._messageReceived.emit({ type, content });
    };
    socket.onclose = () => {
      if (this._socket === socket) {
        this._setStatus('disconnected');
      }
    };
    this._socket = socket;
  }

  private _close(): void {
    const socket = this._socket;
    this._socket = null;
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = null;
      socket.close();
    }
    this._setStatus('disconnected');
  }

  private _setStatus(status: Terminal.ConnectionStatus): void {
    if (status !== this._status && !this._isDisposed) {
      this._status = status;
      this._statusChanged.emit(status);
    } else {
      this._status = status;
    }
  }
}
