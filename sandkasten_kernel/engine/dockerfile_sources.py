"""What an added image's Dockerfile build depends on, for its source hash (``custom_images``).

A build from a Dockerfile is current while three things are as they were: the
Dockerfile, every file of its context that Docker would send (``.dockerignore``
honoured, exactly as docker-py decides it), and the images it starts from (each
``FROM`` and ``COPY --from``, with the ``ARG`` defaults put in; its own stages and
``scratch`` are not images). Their hash goes into the image's label, as the
built-in images' sources do, so a repeated build of an unchanged image is a no-op.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from docker.utils.build import exclude_paths

from .errors import ImageError

_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::([-+])([^}]*))?\}|(\w+))")
_ESCAPE_DIRECTIVE = re.compile(r"#\s*escape\s*=\s*(\S)", re.IGNORECASE)
# A context file's digest, by what identifies its content (path, inode, size, mtime): a listing of the
# images every few seconds (the dashboard) hashes only what changed.
_DIGESTS: dict[tuple[str, int, int, int, int], str] = {}
_MAX_DIGESTS = 20000


@dataclass(frozen=True)
class DockerfileSources:
    """A Dockerfile and its build context, as given to ``sandkasten images add``."""

    dockerfile: Path  # absolute
    context: Path  # absolute

    @classmethod
    def of(cls, dockerfile: str, context: str | None) -> DockerfileSources:
        """``dockerfile`` and ``context`` (default: the Dockerfile's folder) checked and made absolute."""
        path = Path(dockerfile).expanduser().resolve()
        if not path.is_file():
            raise ImageError("no Dockerfile at %s" % path)
        folder = Path(context).expanduser().resolve() if context else path.parent
        if not folder.is_dir():
            raise ImageError("the build context %s is not a directory" % folder)
        return cls(path, folder)

    def text(self) -> str:
        try:
            return self.dockerfile.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ImageError("the Dockerfile %s cannot be read: %s" % (self.dockerfile, exc)) from None

    def parents(self) -> list[str]:
        """The images the Dockerfile builds on, in order of first use."""
        return base_images(self.text())

    def context_digest(self) -> str:
        """A hash of the Dockerfile and of the context files Docker would be sent: names, kinds, modes, contents."""
        digest = hashlib.sha256()
        digest.update(b"Dockerfile\0" + self.text().encode() + b"\0")
        for name in sorted(self._context_names()):
            path = self.context / name
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                entry = "l %s" % os.readlink(path)
            elif stat.S_ISDIR(info.st_mode):
                entry = "d %o" % stat.S_IMODE(info.st_mode)
            elif stat.S_ISREG(info.st_mode):
                entry = "f %o %s" % (stat.S_IMODE(info.st_mode), _file_digest(path, info))
            else:
                continue  # sockets, FIFOs: Docker sends none
            digest.update(name.encode() + b"\0" + entry.encode() + b"\0")
        return digest.hexdigest()

    def _context_names(self) -> set[str]:
        ignore = self.context / ".dockerignore"
        patterns: list[str] = []
        if ignore.is_file():
            lines = ignore.read_text(encoding="utf-8", errors="replace").splitlines()
            patterns = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
        inside = self.dockerfile.is_relative_to(self.context)
        relative = self.dockerfile.relative_to(self.context).as_posix() if inside else None
        try:
            return set(exclude_paths(str(self.context), patterns, dockerfile=relative))
        except OSError as exc:
            raise ImageError("the build context %s cannot be read: %s" % (self.context, exc)) from None


def _file_digest(path: Path, info: os.stat_result) -> str:
    key = (str(path), info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
    found = _DIGESTS.get(key)
    if found is None:
        digest = hashlib.sha256()
        try:
            with path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
        except OSError as exc:
            raise ImageError("%s in the build context cannot be read: %s" % (path, exc)) from None
        if len(_DIGESTS) >= _MAX_DIGESTS:
            _DIGESTS.clear()
        found = _DIGESTS[key] = digest.hexdigest()
    return found


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, its arguments) per instruction: continuation lines joined, comments dropped."""
    lines = text.splitlines()
    escape = "\\"
    for line in lines:  # parser directives come first, before any instruction or blank line
        match = _ESCAPE_DIRECTIVE.fullmatch(line.strip())
        if match:
            escape = match.group(1)
        elif not line.strip().startswith("#"):
            break
    instructions, pending = [], ""
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if stripped.endswith(escape):
            pending += stripped[: -len(escape)] + " "
            continue
        whole = (pending + stripped).strip()
        pending = ""
        if whole:
            keyword, _, rest = whole.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    if pending.strip():
        keyword, _, rest = pending.strip().partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    return instructions


def _substitute(value: str, variables: dict[str, str]) -> str:
    """``$NAME``, ``${NAME}``, ``${NAME:-word}`` and ``${NAME:+word}`` as Docker expands them in FROM."""

    def expand(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(4)
        found = variables.get(name, "")
        if match.group(2) == "-":
            return found or match.group(3)
        if match.group(2) == "+":
            return match.group(3) if found else ""
        return found

    return _VARIABLE.sub(expand, value)


def _arg_defaults(arguments: str) -> dict[str, str]:
    defaults = {}
    for item in arguments.split():
        name, _, value = item.partition("=")
        defaults[name] = value.strip("\"'")
    return defaults


def base_images(text: str) -> list[str]:
    """The images a Dockerfile builds on: each FROM, and COPY/ADD --from that is not one of its stages."""
    variables: dict[str, str] = {}
    stages: set[str] = set()
    found: list[str] = []
    first_from_seen = False

    def note(reference: str) -> None:
        if reference and reference.lower() not in stages and reference != "scratch" and reference not in found:
            found.append(reference)

    for keyword, arguments in _instructions(text):
        words = arguments.split()
        if keyword == "ARG" and not first_from_seen:  # global ARGs: the only ones FROM sees
            variables.update(_arg_defaults(arguments))
        elif keyword == "FROM":
            first_from_seen = True
            plain = [word for word in words if not word.startswith("--")]
            if plain:
                note(_substitute(plain[0], variables))
            if len(plain) >= 3 and plain[1].lower() == "as":
                stages.add(plain[2].lower())
        elif keyword in ("COPY", "ADD"):
            for word in words:
                if word.startswith("--from="):
                    source = word.split("=", 1)[1]
                    if not source.isdigit():
                        note(source)
    return found
