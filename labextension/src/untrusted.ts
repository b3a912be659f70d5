/**
 * Output a sandbox produced stays untrusted, whatever later sets `trusted`.
 *
 * JupyterLab renders an output with its model's `trusted` flag: trusted HTML
 * runs its scripts and event handlers, trusted JavaScript is evaluated, and
 * untrusted HTML and Markdown go through the sanitizer (no script, no `on*`
 * handler, no iframe), untrusted JavaScript and SVG are not rendered at all,
 * while images and sanitized tables still show. Trust is set in many places:
 * running a cell trusts it (`CodeCell.execute`, `clearExecution`), so does the
 * console for its prompt and for other clients' cells, and the "Trust Notebook"
 * command. Undoing it afterwards would be too late: the output area re-renders
 * trusted as soon as the flag flips, and `<img onerror>` fires on first render.
 *
 * So the flag is pinned where it is read. A code cell's output area model
 * creates every output (added, updated, loaded) with its own `trusted` value;
 * its accessor is replaced on that one instance by one that stays false, and
 * the cell model's likewise, so the cell is never written to disk as trusted
 * (`metadata.trusted`), and the server never signs a notebook holding such
 * output. `trusted` is public API on both models (ICellModel,
 * IOutputAreaModel); nothing else of JupyterLab's is changed.
 */
import type { ICellModel, ICodeCellModel } from '@jupyterlab/cells';

/** A model with JupyterLab's `trusted` flag. */
export interface ITrustFlag {
  trusted: boolean;
}

const pinned = new WeakSet<ITrustFlag>();

/** Make `model` untrusted now (re-rendering what it shows) and for good. */
export function pinUntrusted(model: ITrustFlag): void {
  if (pinned.has(model)) {
    return;
  }
  model.trusted = false; // the class's own setter: outputs already shown are re-created untrusted
  Object.defineProperty(model, 'trusted', {
    configurable: false,
    enumerable: true,
    get: () => false,
    set: () => undefined // a sandbox's output is never trusted, whoever asks
  });
  pinned.add(model);
}

/** Whether `model`'s trust is pinned off. */
export function isPinnedUntrusted(model: ITrustFlag): boolean {
  return pinned.has(model);
}

function isCode(cell: ICellModel): cell is ICodeCellModel {
  return cell.type === 'code';
}

/**
 * Pin a code cell and its outputs untrusted, and record that in its metadata
 * (what the server reads when it decides whether to sign the notebook).
 * Markdown and raw cells are the operator's own text and are left alone.
 */
export function distrustCell(cell: ICellModel): void {
  if (!isCode(cell) || cell.isDisposed) {
    return;
  }
  pinUntrusted(cell.outputs);
  pinUntrusted(cell);
  if (cell.getMetadata('trusted') !== false) {
    cell.setMetadata('trusted', false);
  }
}
