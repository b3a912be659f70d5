"""One request to the runner as the ops see it: its id, checked arguments, payload and the way back."""

import os
import socket
from typing import Any, Callable, Dict, Optional, Tuple

from . import errors
from .errors import RunnerError
from .files import Workspace
from .protocol import Incoming, Message
from .shell import valid_env_name

Send = Callable[[Message, bytes], None]
Reply = Tuple[Dict[str, Any], bytes]


class Request:
    """One request: its id, arguments, payload, and the way back to the client."""

    def __init__(
        self, message: Message, payload: bytes, send: Send, conn: socket.socket, incoming: Optional[Incoming] = None
    ) -> None:
        self.id = message.get("id")
        self.op = message.get("op")
        args = message.get("args", {})
        if not isinstance(args, dict):
            raise RunnerError(errors.BAD_REQUEST, "args must be an object")
        self.args: Dict[str, Any] = args
        self.payload = payload
        self.incoming = incoming  # a streamed op's payload, still on the socket
        self.send = send
        self.conn = conn

    def arg(self, name: str, kind: Any, default: Any = None, required: bool = False) -> Any:
        """Fetch and type-check one argument."""
        if self.args.get(name) is None:
            if required:
                raise RunnerError(errors.BAD_REQUEST, "missing argument %r" % name)
            return default
        value = self.args[name]
        # bool is an int in Python; never accept one for the other.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise RunnerError(errors.BAD_REQUEST, "argument %r must be of type %s" % (name, kind.__name__))
        return value

    def mode(self, default: int) -> int:
        """The ``mode`` argument: permission bits."""
        mode: int = self.arg("mode", int, default)
        if not 0 <= mode <= 0o7777:
            raise RunnerError(errors.BAD_REQUEST, "mode must be a permission number from 0 to 0o7777")
        return mode

    def count(self, name: str, default: Optional[int]) -> Optional[int]:
        """A non-negative integer argument."""
        value: Optional[int] = self.arg(name, int, default)
        if value is not None and value < 0:
            raise RunnerError(errors.BAD_REQUEST, "argument %r must not be negative" % name)
        return value

    def cwd(self, workspace: Workspace) -> Optional[str]:
        """The ``cwd`` argument as a directory (relative to the workspace unless absolute), or None."""
        cwd = self.arg("cwd", str)
        if cwd is None:
            return None
        path = cwd if os.path.isabs(cwd) else workspace.resolve(cwd)
        if not os.path.isdir(path):
            code = errors.NOT_A_DIRECTORY if os.path.exists(path) else errors.NOT_FOUND
            raise RunnerError(code, "cwd %s is not a directory" % cwd)
        return path

    def env(self) -> Dict[str, str]:
        """The ``env`` argument: variable names to string values."""
        env: Dict[str, Any] = self.arg("env", dict, {})
        for name, value in env.items():
            if not (isinstance(value, str) and valid_env_name(name)):
                raise RunnerError(errors.BAD_REQUEST, "env must map variable names to strings; bad entry %r" % name)
        return env
