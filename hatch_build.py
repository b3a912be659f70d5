"""The build's one requirement that depends on the tree: JupyterLab, only where the dashboard is built."""

from __future__ import annotations

from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class DashboardBuildRequirements(BuildHookInterface):  # type: ignore[type-arg]
    """``jupyter labextension build`` needs JupyterLab. An unpacked sdist carries the dashboard prebuilt (the
    jupyter-builder hook's ``skip-if-exists``), so a wheel built from it needs neither JupyterLab nor node."""

    def dependencies(self) -> list[str]:
        prebuilt = self.build_config.hook_config["jupyter-builder"]["skip-if-exists"]
        return [] if all(Path(self.root, path).exists() for path in prebuilt) else ["jupyterlab>=4,<5"]
