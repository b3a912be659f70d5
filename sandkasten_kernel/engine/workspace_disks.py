"""Named workspaces on disk images of a fixed size, so a workspace cannot fill the host's disk.

A plain Docker volume lives on the host's disk with no cap. Instead, each named
workspace gets a sparse ext4 image, ``<state_dir>/workspaces/[users/<tag>/]images/<name>.img``
of ``workspace.size_mb``, loop-mounted at ``.../mounts/<name>`` beside it (a user's
under a folder of their own, see ``workspace_names``); the workspace's Docker
volume binds that directory. The engine mounts
the image before any sandbox uses the volume, so after a reboot the first
session on it mounts it again. The image is the data: the volume is only its
name. Creating images and loop mounts need root, ``mkfs.ext4`` and loop devices;
without them workspaces are plain (uncapped) volumes, and a warning says so.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess

from .errors import EngineError
from .run_dirs import remove_run_dir
from .sandbox_spec import SANDBOX_UID
from .workspace_names import WorkspaceRef

log = logging.getLogger("sandkasten.engine")


class WorkspaceDisks:
    """The fixed-size disk images that back named workspaces, and their loop mounts."""

    def __init__(self, state_dir: str, size_mb: int) -> None:
        self.root = os.path.join(os.path.realpath(state_dir), "workspaces")
        self.size_mb = size_mb
        self._usable: bool | None = None

    def mount_point(self, workspace: WorkspaceRef) -> str:
        """Where the workspace's disk image is mounted: the directory its volume binds."""
        return os.path.join(self.root, workspace.disk_dir, "mounts", workspace.name)

    def image(self, workspace: WorkspaceRef) -> str:
        """The path of the workspace's disk image."""
        # apart from the mounts: a workspace may be named "x.img"
        return os.path.join(self.root, workspace.disk_dir, "images", workspace.name + ".img")

    def has_image(self, workspace: WorkspaceRef) -> bool:
        """Whether the workspace's disk image exists."""
        return os.path.exists(self.image(workspace))

    @property
    def usable(self) -> bool:
        """Whether capped workspaces can be made here (checked once)."""
        if self._usable is None:
            missing = [tool for tool in ("mkfs.ext4", "mount") if shutil.which(tool) is None]
            self._usable = os.geteuid() == 0 and not missing
            if not self._usable:
                log.warning(
                    "named workspaces are uncapped Docker volumes (%s): a session can fill the host's disk "
                    "through one. Run the server as root with e2fsprogs installed to cap them at workspace.size_mb.",
                    "missing %s" % ", ".join(missing) if missing else "not root",
                )
        return self._usable

    def ensure_mounted(self, workspace: WorkspaceRef) -> str | None:
        """The directory the workspace's volume binds, its image made and mounted; None: uncapped."""
        if not self.usable:
            return None
        mount_point, image = self.mount_point(workspace), self.image(workspace)
        if os.path.ismount(mount_point):
            return mount_point
        os.makedirs(mount_point, mode=0o755, exist_ok=True)
        os.makedirs(os.path.dirname(image), mode=0o700, exist_ok=True)
        fresh = not os.path.exists(image)
        if fresh:
            with open(image, "wb") as f:
                f.truncate(self.size_mb << 20)  # sparse: takes disk only as it fills
            owner = "root_owner=%d:%d" % (SANDBOX_UID, SANDBOX_UID)
            self._run(["mkfs.ext4", "-q", "-F", "-m", "0", "-E", owner, image])
        self._run(["mount", "-o", "loop,nosuid,nodev", image, mount_point])
        if fresh:
            with contextlib.suppress(OSError):  # e2fsck makes it again when it needs it
                os.rmdir(os.path.join(mount_point, "lost+found"))
        return mount_point

    def used_bytes(self, workspace: WorkspaceRef) -> int | None:
        """Bytes in use on the workspace's disk; None when it is not mounted."""
        mount_point = self.mount_point(workspace)
        if not os.path.ismount(mount_point):
            return None
        stats = os.statvfs(mount_point)
        return (stats.f_blocks - stats.f_bfree) * stats.f_frsize

    def remove(self, workspace: WorkspaceRef) -> None:
        """Unmount and delete the workspace's image (its volume is already gone)."""
        remove_run_dir(self.mount_point(workspace))  # unmount, then the empty mount point
        if os.path.exists(self.image(workspace)):
            os.unlink(self.image(workspace))

    @staticmethod
    def _run(command: list[str]) -> None:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise EngineError("%s failed: %s" % (command[0], (done.stderr or done.stdout).strip()))
