// Pinning `trusted` off: what a later `trusted = true` (running a cell, "Trust Notebook") cannot undo.
// The models here have JupyterLab's shape (a prototype accessor whose setter re-renders); the real
// models, in a real JupyterLab, are driven by e2e/untrusted_outputs.mjs.
import { describe, expect, it } from 'vitest';
import type { ICellModel } from '@jupyterlab/cells';
import { distrustCell, isPinnedUntrusted, pinUntrusted } from '../src/untrusted';

class Flagged {
  renders: boolean[] = [];
  get trusted(): boolean {
    return this._trusted;
  }
  set trusted(value: boolean) {
    this._trusted = value;
    this.renders.push(value);
  }
  private _trusted = true;
}

class Cell extends Flagged {
  constructor(readonly type: string) {
    super();
  }
  isDisposed = false;
  outputs = new Flagged();
  metadata: Record<string, unknown> = { trusted: true };
  getMetadata(key: string): unknown {
    return this.metadata[key];
  }
  setMetadata(key: string, value: unknown): void {
    this.metadata[key] = value;
  }
}

describe('pinUntrusted', () => {
  it('distrusts through the class once, then ignores every attempt to trust', () => {
    const model = new Flagged();
    pinUntrusted(model);
    expect(model.trusted).toBe(false);
    expect(model.renders).toEqual([false]); // what was shown trusted is re-rendered untrusted
    model.trusted = true;
    expect(model.trusted).toBe(false);
    expect(model.renders).toEqual([false]);
    pinUntrusted(model);
    expect(model.renders).toEqual([false]);
    expect(isPinnedUntrusted(model)).toBe(true);
    expect(isPinnedUntrusted(new Flagged())).toBe(false);
  });

  it('cannot be redefined by other code', () => {
    const model = new Flagged();
    pinUntrusted(model);
    expect(() => Object.defineProperty(model, 'trusted', { value: true })).toThrow(TypeError);
    expect(model.trusted).toBe(false);
  });
});

describe('distrustCell', () => {
  it("pins a code cell and its outputs and records it in the cell's metadata", () => {
    const cell = new Cell('code');
    distrustCell(cell as unknown as ICellModel);
    cell.trusted = true;
    cell.outputs.trusted = true;
    expect([cell.trusted, cell.outputs.trusted]).toEqual([false, false]);
    expect(cell.metadata.trusted).toBe(false);
  });

  it("leaves markdown and raw cells, the operator's own text, alone", () => {
    for (const type of ['markdown', 'raw']) {
      const cell = new Cell(type);
      distrustCell(cell as unknown as ICellModel);
      expect([cell.trusted, cell.metadata.trusted, isPinnedUntrusted(cell)]).toEqual([true, true, false]);
    }
  });
});
