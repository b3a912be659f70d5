/**
 * One notebook's or console's watch over where its outputs come from.
 *
 * Once the widget's kernel is a sandbox's (the kernel it has, the kernel it
 * asked for, or, for a notebook, the kernelspec in its metadata), every code
 * cell it holds and every cell added later is distrusted (untrusted.ts), for
 * the rest of the widget's life: output already received from a sandbox stays
 * the sandbox's even if the kernel is changed afterwards. The kernel is known,
 * synchronously, before its first message can arrive, so no output of a
 * sandboxed kernel is ever rendered trusted.
 */
import type { ISessionContext } from '@jupyterlab/apputils';
import type { ICellModel } from '@jupyterlab/cells';
import { Signal } from '@lumino/signaling';
import { distrustCell } from './untrusted';

export class OutputQuarantine {
  constructor(options: OutputQuarantine.IOptions) {
    this._options = options;
    options.sessionContext.kernelChanged.connect(this.check, this);
    options.sessionContext.sessionChanged.connect(this.check, this);
    this.check();
  }

  /** Whether this widget's outputs are distrusted. */
  get active(): boolean {
    return this._active;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /** Look at the kernel again; on the first sign of a sandbox, distrust every cell. */
  check(): void {
    if (this._active || this._isDisposed) {
      return;
    }
    const { sessionContext, isSandbox, declaredKernel } = this._options;
    const names = [sessionContext.session?.kernel?.name, sessionContext.kernelPreference.name, declaredKernel?.()];
    if (names.some(name => isSandbox(name))) {
      this._active = true;
      for (const cell of this._options.cells()) {
        distrustCell(cell);
      }
    }
  }

  /** A cell that just joined the widget: distrusted if the widget's kernel is a sandbox's. */
  admit(cell: ICellModel): void {
    if (this._active) {
      distrustCell(cell);
    }
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    Signal.disconnectReceiver(this);
  }

  private readonly _options: OutputQuarantine.IOptions;
  private _active = false;
  private _isDisposed = false;
}

export namespace OutputQuarantine {
  export interface IOptions {
    /** The widget's session: its kernel decides. */
    sessionContext: ISessionContext;
    /** Whether a kernelspec name is a sandbox's (sandboxKernel.ts, with the server's specs). */
    isSandbox: (kernelName: string | null | undefined) => boolean;
    /** The widget's cell models now. */
    cells: () => Iterable<ICellModel>;
    /** The kernelspec the document names, if any (a notebook's `metadata.kernelspec.name`). */
    declaredKernel?: () => string | undefined;
  }
}
