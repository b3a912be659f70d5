"""The runner's error codes. Every error reply carries one of these and a message.

The table in runner/PROTOCOL.md lists the same codes; keep the two together.
"""

from typing import Any

# framing and requests
BAD_FRAME = "bad_frame"
FRAME_TOO_LARGE = "frame_too_large"
UNSUPPORTED_VERSION = "unsupported_version"
UNKNOWN_OP = "unknown_op"
BAD_REQUEST = "bad_request"
INTERNAL = "internal"
# shell
SHELL_BUSY = "shell_busy"
SHELL_UNAVAILABLE = "shell_unavailable"
# processes beside the shell
TOO_MANY_JOBS = "too_many_jobs"
STDIN_CLOSED = "stdin_closed"
STDIN_FULL = "stdin_full"
# files
PATH_OUTSIDE_WORKSPACE = "path_outside_workspace"
INVALID_PATH = "invalid_path"
NOT_FOUND = "not_found"
NOT_A_DIRECTORY = "not_a_directory"
IS_A_DIRECTORY = "is_a_directory"
ALREADY_EXISTS = "already_exists"
DIRECTORY_NOT_EMPTY = "directory_not_empty"
FILE_TOO_LARGE = "file_too_large"
PERMISSION_DENIED = "permission_denied"
NO_SPACE = "no_space"
IO_ERROR = "io_error"
# kernel
KERNEL_NOT_RUNNING = "kernel_not_running"
KERNEL_ALREADY_RUNNING = "kernel_already_running"
KERNEL_START_FAILED = "kernel_start_failed"


class RunnerError(Exception):
    """An error that becomes an error reply; the connection stays usable."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
