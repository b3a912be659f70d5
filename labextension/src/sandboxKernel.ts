/**
 * Which kernels run in a Sandkasten sandbox, and so run code nobody vouches for.
 *
 * A sandboxed kernel is one whose kernelspec names the `sandkasten-provisioner`
 * (sandkasten_kernel/kernelspecs.py writes `sandkasten-python` and one spec per
 * image like that). The spec's name is checked too: the server may list a
 * running kernel whose spec it does not list (`allowed_kernelspecs`), and
 * taking a sandkasten-named kernel for a sandbox errs on the safe side.
 */
import type { KernelSpec } from '@jupyterlab/services';

export const PROVISIONER_NAME = 'sandkasten-provisioner';
export const KERNEL_NAME_PREFIX = 'sandkasten-';

/** Whether the kernelspec `name` runs its kernels in a sandbox; `specs` is the server's list, if loaded. */
export function isSandboxKernel(name: string | null | undefined, specs: KernelSpec.ISpecModels | null): boolean {
  if (!name) {
    return false;
  }
  if (name.startsWith(KERNEL_NAME_PREFIX)) {
    return true;
  }
  const provisioner = specs?.kernelspecs[name]?.metadata?.['kernel_provisioner'];
  return (
    typeof provisioner === 'object' &&
    provisioner !== null &&
    !Array.isArray(provisioner) &&
    provisioner['provisioner_name'] === PROVISIONER_NAME
  );
}
