"""The engine: Docker sandboxes, the runner client, images.

It never imports tornado or Jupyter Server; handlers and the provisioner call it.
The names below are its public surface: code outside the engine (the server
extension, the provisioner, the CLI) imports them from here, not from the
submodules, which may move.
"""

from .config import (
    CONFIG_CLASSES,
    CONFIG_ENV,
    SECTIONS,
    Settings,
    find_config,
    listen_address,
    load_settings,
    settings_from,
    user_config_path,
    user_data_dir,
    yaml_to_config,
)
from .custom_images import CustomImages, builtin_listing
from .docker_backend import DockerBackend, connect, remove_sandbox, start_sandbox
from .engine import Engine
from .errors import (
    ConfigError,
    DockerUnavailable,
    EngineError,
    FirewallError,
    ImageError,
    ImageInUse,
    ImageNotFound,
    LimitExceeded,
    NetworkIsolationError,
    NotAllowed,
    PoolExhausted,
    QuotaExceeded,
    RunnerRequestError,
    RunnerUnavailable,
    SessionBusy,
    SessionLost,
    SessionNotFound,
    SessionPaused,
    SnapshotExists,
    SnapshotNotFound,
    SnapshotTooLarge,
    StoreError,
    UnsafeRunDirEntry,
    WorkspaceExists,
    WorkspaceInUse,
    WorkspaceNotFound,
)
from .image_catalog import attach_catalog
from .images import DEFAULT_MIRROR, IMAGES, ImageBuilder
from .run_dirs import unmount_all_under
from .runner_client import ExecResult, RunnerClient
from .runner_terminal import RunnerTerminal
from .sandbox_spec import SandboxSpec
from .sandboxes import LABEL_POOL, LABEL_SESSION
from .store import Event, SessionRecord, open_state_store, store_path

__all__ = [
    "CONFIG_CLASSES",
    "CONFIG_ENV",
    "DEFAULT_MIRROR",
    "IMAGES",
    "LABEL_POOL",
    "LABEL_SESSION",
    "SECTIONS",
    "ConfigError",
    "CustomImages",
    "DockerBackend",
    "DockerUnavailable",
    "Engine",
    "EngineError",
    "Event",
    "ExecResult",
    "FirewallError",
    "ImageBuilder",
    "ImageError",
    "ImageInUse",
    "ImageNotFound",
    "LimitExceeded",
    "NetworkIsolationError",
    "NotAllowed",
    "PoolExhausted",
    "QuotaExceeded",
    "RunnerClient",
    "RunnerRequestError",
    "RunnerTerminal",
    "RunnerUnavailable",
    "SandboxSpec",
    "SessionBusy",
    "SessionLost",
    "SessionNotFound",
    "SessionPaused",
    "SessionRecord",
    "Settings",
    "SnapshotExists",
    "SnapshotNotFound",
    "SnapshotTooLarge",
    "StoreError",
    "UnsafeRunDirEntry",
    "WorkspaceExists",
    "WorkspaceInUse",
    "WorkspaceNotFound",
    "attach_catalog",
    "builtin_listing",
    "connect",
    "find_config",
    "listen_address",
    "load_settings",
    "open_state_store",
    "remove_sandbox",
    "settings_from",
    "start_sandbox",
    "store_path",
    "unmount_all_under",
    "user_config_path",
    "user_data_dir",
    "yaml_to_config",
]
