// Which kernels are a sandbox's: by the provisioner in the kernelspec the server lists, or by name.
import { KernelSpecAPI, ServerConnection } from '@jupyterlab/services';
import type { KernelSpec } from '@jupyterlab/services';
import { describe, expect, it } from 'vitest';
import { isSandboxKernel } from '../src/sandboxKernel';

const base = process.env.SANDKASTEN_URL;
const key = process.env.SANDKASTEN_API_KEY;

function specs(entries: Record<string, Partial<KernelSpec.ISpecModel>>): KernelSpec.ISpecModels {
  const kernelspecs: Record<string, KernelSpec.ISpecModel> = {};
  for (const [name, spec] of Object.entries(entries)) {
    kernelspecs[name] = { name, language: 'python', argv: [], display_name: name, resources: {}, ...spec };
  }
  return { default: Object.keys(entries)[0] ?? '', kernelspecs };
}

describe('isSandboxKernel', () => {
  const provisioned = { metadata: { kernel_provisioner: { provisioner_name: 'sandkasten-provisioner' } } };

  it('knows a kernelspec by its provisioner, whatever its name', () => {
    const listed = specs({ 'team-gpu': provisioned, python3: {}, other: { metadata: { kernel_provisioner: 'x' } } });
    expect(isSandboxKernel('team-gpu', listed)).toBe(true);
    expect(isSandboxKernel('python3', listed)).toBe(false);
    expect(isSandboxKernel('other', listed)).toBe(false);
    expect(isSandboxKernel('missing', listed)).toBe(false);
  });

  it('takes any sandkasten-* kernel for a sandbox, listed or not, specs loaded or not', () => {
    expect(isSandboxKernel('sandkasten-python', null)).toBe(true);
    expect(isSandboxKernel('sandkasten-node', specs({ python3: {} }))).toBe(true);
    expect(isSandboxKernel('team-gpu', null)).toBe(false);
    expect(isSandboxKernel(undefined, null)).toBe(false);
    expect(isSandboxKernel('', null)).toBe(false);
  });

  it.runIf(base && key)("recognises every kernelspec a real `sandkasten serve` lists by its metadata", async () => {
    // JupyterLab's own client, so the specs have the shape the plugin sees.
    const settings = ServerConnection.makeSettings({ baseUrl: `${base}/`, token: key, appendToken: false });
    const listed = await KernelSpecAPI.getSpecs(settings);
    const names = Object.keys(listed.kernelspecs);
    expect(names).toContain('sandkasten-python');
    for (const name of names) {
      const spec = listed.kernelspecs[name]!;
      // Renamed, the spec is still a sandbox's: the provisioner in its metadata says so.
      const renamed = specs({ renamed: spec });
      expect(isSandboxKernel('renamed', renamed), name).toBe(true);
    }
  });
});
