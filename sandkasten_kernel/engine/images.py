"""Building the sandbox images without a registry.

Each image is two builds. ``sandkasten/layers:<name>`` holds the packages
(``images/<name>/Dockerfile``); ``sandkasten/runtime:<name>`` adds the runner on
top (``images/runner/Dockerfile``), so a change to the runner rebuilds one small
layer per image, never the packages.

``layers:base`` starts from ``debian:bookworm-slim`` when the engine has it or
can pull it; otherwise from ``sandkasten/bootstrap:bookworm``, made here with
``debootstrap --variant=minbase`` and ``docker import``. ``layers:python`` and
``layers:node`` build on ``layers:base``.

Every image carries a label with the hash of its sources (Dockerfile, files it
copies, and the id of the image it starts from). A build skips an image whose
label already matches, so a re-run costs seconds.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

import sandkasten_runner

from .errors import ImageError

HASH_LABEL = "sandkasten.source-hash"
REGISTRY_BASE = "debian:bookworm-slim"
BOOTSTRAP_TAG = "sandkasten/bootstrap:bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"

Progress = Callable[[str], None]
Files = list[tuple[Path, str]]  # (source path, name in the build context)


@dataclass(frozen=True)
class ImageSpec:
    """One sandbox image (base, python, node) and the image it builds on."""

    name: str
    parent: str | None  # another spec's name, or None for the Debian root image

    @property
    def tag(self) -> str:
        """The image sandboxes run: packages plus the runner."""
        return "sandkasten/runtime:%s" % self.name

    @property
    def layers_tag(self) -> str:
        """The packages alone; children build on this, not on ``tag``."""
        return "sandkasten/layers:%s" % self.name


IMAGES: dict[str, ImageSpec] = {
    spec.name: spec for spec in (ImageSpec("base", None), ImageSpec("python", "base"), ImageSpec("node", "base"))
}


@dataclass(frozen=True)
class BuildOutcome:
    """What building one image did: its tag, whether it was built or already current, and how long it took."""

    name: str
    tag: str
    built: bool
    seconds: float


def sources_dir() -> Path:
    """The Dockerfiles: inside the installed package, or images/ in a checkout."""
    packaged = Path(__file__).with_name("image_sources")
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[2] / "images"
    if checkout.is_dir():
        return checkout
    raise ImageError("the image sources are missing: neither %s nor %s exists" % (packaged, checkout))


def _runner_files() -> Iterator[tuple[Path, str]]:
    root = Path(sandkasten_runner.__file__).parent
    for path in sorted(root.rglob("*.py")):
        yield path, "sandkasten_runner/%s" % path.relative_to(root).as_posix()


def layer_files(spec: ImageSpec) -> Files:
    """The build context of ``spec``'s package layer: its Dockerfile alone."""
    return [(sources_dir() / spec.name / "Dockerfile", "Dockerfile")]


def runner_files() -> Files:
    """The build context of the runner layer: its Dockerfile and the runner's Python sources."""
    return [(sources_dir() / "runner" / "Dockerfile", "Dockerfile"), *_runner_files()]


def local_image(client: docker.DockerClient, ref: str) -> Any | None:
    """The image ``ref`` as this Docker engine has it, or None (never pulled)."""
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def source_label(image: Any | None) -> str | None:
    """The source hash ``image`` was built from (None: no image, or not one of ours)."""
    return (image.labels or {}).get(HASH_LABEL) if image is not None else None


def custom_runner_files() -> Files:
    """The build context of an added image's runner layer (``custom_images``): its Dockerfile and the runner."""
    return [(sources_dir() / "custom-runner" / "Dockerfile", "Dockerfile"), *_runner_files()]


class BuildFailed(ImageError):
    """``docker build`` stopped at an error: Docker's message, and the build's last lines of output."""

    def __init__(self, tag: str, error: str, output: list[str]) -> None:
        # Docker's message repeats the whole command of a failed RUN: its start says which one it was.
        error = re.sub(r"The command '(.{60}).+' returned", r"The command '\1...' returned", error, flags=re.S)
        super().__init__("building %s failed: %s\n%s" % (tag, error, "".join(output[-15:])))
        self.tag = tag
        self.error = error
        self.output = output


@dataclass(frozen=True)
class BuildStep:
    """One ``docker build`` of an image: the tag it makes, what it starts from, the hash its label must carry."""

    name: str  # the image's name, for progress lines
    tag: str
    parent: str
    source_hash: str


def build_step(
    client: docker.DockerClient, progress: Progress, step: BuildStep, force: bool, build: Callable[[], None]
) -> BuildOutcome:
    """Run ``build`` unless ``step.tag``'s label says it is current already (or ``force``), with progress."""
    started = time.monotonic()
    if not force and source_label(local_image(client, step.tag)) == step.source_hash:
        progress("%s is current (sources %s), skipped" % (step.tag, step.source_hash[:12]))
        return BuildOutcome(step.name, step.tag, False, time.monotonic() - started)
    progress("building %s from %s" % (step.tag, step.parent))
    build()
    seconds = time.monotonic() - started
    progress("built %s in %.1f s" % (step.tag, seconds))
    return BuildOutcome(step.name, step.tag, True, seconds)


def build_files(
    client: docker.DockerClient,
    progress: Progress,
    name: str,
    tag: str,
    files: Files,
    buildargs: dict[str, str],
    labels: dict[str, str],
) -> None:
    """``docker_build`` of a context made of ``files`` alone (in a temporary folder)."""
    with tempfile.TemporaryDirectory(prefix="sandkasten-build-") as context:
        for source, context_name in files:
            target = Path(context, context_name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        docker_build(client, progress, name, tag, context, buildargs, labels)


def docker_build(
    client: docker.DockerClient,
    progress: Progress,
    name: str,
    tag: str,
    context: str,
    buildargs: dict[str, str],
    labels: dict[str, str],
    dockerfile: str | None = None,
) -> None:
    """Build ``context`` (with ``dockerfile``, default its Dockerfile) as ``tag`` with ``labels``, never
    pulling a newer base; each line of output goes to ``progress``, as ``[name] line``. A failure is a
    ``BuildFailed``."""
    recent: list[str] = []
    try:
        stream = client.api.build(
            path=context,
            dockerfile=dockerfile,
            tag=tag,
            buildargs=buildargs,
            labels=labels,
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
        )
        for event in stream:
            if "error" in event:
                raise BuildFailed(tag, event["error"].strip(), recent)
            for line in _COLOURS.sub("", event.get("stream", "")).splitlines(keepends=True):
                if line.strip():
                    recent.append(line)
                    if _is_step(line):
                        progress("[%s] %s" % (name, _shortened(line.strip())))
    except docker.errors.APIError as exc:
        raise BuildFailed(tag, str(exc.explanation or exc), recent) from None


_COLOURS = re.compile(r"\x1b\[[0-9;]*m")  # Docker colours what a step writes to stderr


def _is_step(line: str) -> bool:
    return line.startswith(("Step ", "sandkasten: "))


def _shortened(line: str, width: int = 160) -> str:
    return line if len(line) <= width else line[: width - 3] + "..."


def hash_sources(files: Iterable[tuple[Path, str]], *extra: str) -> str:
    """The hash an image's label carries: its context files (by name and content), then ``extra`` (the parent's id)."""
    digest = hashlib.sha256()
    for path, name in files:
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    for item in extra:
        digest.update(item.encode() + b"\0")
    return digest.hexdigest()[:32]


class ImageBuilder:
    """Builds the sandbox images (root filesystem, package layers, runner) unless they are current."""

    def __init__(self, client: docker.DockerClient, progress: Progress = print, mirror: str = DEFAULT_MIRROR) -> None:
        self._client = client
        self._progress = progress
        self._mirror = mirror

    # -- queries ----------------------------------------------------------------

    def _image(self, ref: str) -> Any | None:
        return local_image(self._client, ref)

    def _label(self, ref: str) -> str | None:
        return source_label(local_image(self._client, ref))

    def status(self) -> list[dict[str, Any]]:
        """Which runtime images exist and whether each matches its sources (``state``: current, outdated or
        missing), with the image its packages start from, and the image's id and size in bytes where it exists."""
        rows = []
        root_ref = self._root_ref(allow_build=False)
        for spec in self._ordered(IMAGES):
            current = True
            steps = self._steps(spec, root_ref)
            for tag, files, parent_ref in steps:
                parent = self._image(parent_ref) if parent_ref else None
                wanted = hash_sources(files, parent.id) if parent is not None else None
                current = current and wanted is not None and self._label(tag) == wanted
            image = self._image(spec.tag)
            present = image is not None and (image.labels or {}).get(HASH_LABEL) is not None
            rows.append(
                {
                    "name": spec.name,
                    "tag": spec.tag,
                    "parent": steps[0][2],  # the image its packages start from
                    "state": "current" if current else ("outdated" if present else "missing"),
                    "present": present,
                    "current": current,
                    "id": image.id if image is not None else None,
                    "size_bytes": image.attrs.get("Size") if image is not None else None,
                }
            )
        return rows

    @staticmethod
    def _steps(spec: ImageSpec, root_ref: str | None) -> list[tuple[str, Files, str | None]]:
        """(tag, context files, image it starts from) for each build of ``spec``."""
        parent_ref = IMAGES[spec.parent].layers_tag if spec.parent else root_ref
        return [(spec.layers_tag, layer_files(spec), parent_ref), (spec.tag, runner_files(), spec.layers_tag)]

    # -- building ----------------------------------------------------------------

    @staticmethod
    def _ordered(names: Iterable[str]) -> list[ImageSpec]:
        """The requested images and their parents, parents first."""
        wanted: list[ImageSpec] = []
        for name in names:
            if name not in IMAGES:
                raise ImageError("unknown image %r; known: %s" % (name, ", ".join(IMAGES)))
            chain = []
            spec: ImageSpec | None = IMAGES[name]
            while spec is not None:
                chain.append(spec)
                spec = IMAGES[spec.parent] if spec.parent else None
            for item in reversed(chain):
                if item not in wanted:
                    wanted.append(item)
        return wanted

    def build(self, names: Iterable[str] | None = None, force: bool = False) -> list[BuildOutcome]:
        """Build the named images (default all) and their parents; one outcome per image built or skipped."""
        outcomes = []
        specs = self._ordered(names or IMAGES)
        root_ref = self._root_ref(allow_build=True)
        for spec in specs:
            for tag, files, parent_ref in self._steps(spec, root_ref):
                assert parent_ref is not None
                outcomes.append(self._build_one(spec.name, tag, files, parent_ref, force))
        return outcomes

    def _build_one(self, name: str, tag: str, files: Files, parent_ref: str, force: bool) -> BuildOutcome:
        parent = self._image(parent_ref)
        if parent is None:
            raise ImageError("%s needs %s, which is missing" % (tag, parent_ref))
        source_hash = hash_sources(files, parent.id)
        return build_step(
            self._client,
            self._progress,
            BuildStep(name, tag, parent_ref, source_hash),
            force,
            lambda: build_files(
                self._client, self._progress, name, tag, files, {"BASE": parent_ref}, {HASH_LABEL: source_hash}
            ),
        )

    # -- the Debian root image ------------------------------------------------------

    def _root_ref(self, allow_build: bool) -> str | None:
        """The image ``:base`` starts from, pulling or bootstrapping it if allowed."""
        if self._image(REGISTRY_BASE) is not None:
            return REGISTRY_BASE
        bootstrap_hash = hash_sources([], "debootstrap", "minbase", "bookworm", self._mirror)
        if self._label(BOOTSTRAP_TAG) == bootstrap_hash:
            return BOOTSTRAP_TAG
        if not allow_build:
            return None
        try:
            self._progress("pulling %s" % REGISTRY_BASE)
            self._client.images.pull(REGISTRY_BASE)
            return REGISTRY_BASE
        except docker.errors.APIError as exc:
            self._progress("cannot pull %s (%s); building it with debootstrap" % (REGISTRY_BASE, exc.explanation))
        self._bootstrap(bootstrap_hash)
        return BOOTSTRAP_TAG

    def _bootstrap(self, bootstrap_hash: str) -> None:
        debootstrap = shutil.which("debootstrap") or (
            "/usr/sbin/debootstrap" if os.path.exists("/usr/sbin/debootstrap") else None
        )
        if debootstrap is None:
            raise ImageError(
                "%s cannot be pulled and debootstrap is not installed: apt-get install debootstrap" % REGISTRY_BASE
            )
        if os.geteuid() != 0:
            raise ImageError("debootstrap must run as root to build %s" % BOOTSTRAP_TAG)
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="sandkasten-rootfs-") as work:
            rootfs = os.path.join(work, "rootfs")
            tarball = os.path.join(work, "rootfs.tar")
            command = [debootstrap, "--variant=minbase", "bookworm", rootfs, self._mirror]
            self._progress("running %s" % " ".join(command))
            self._run_with_progress(command)
            self._progress("packing the root filesystem")
            subprocess.run(["tar", "-C", rootfs, "-cf", tarball, "."], check=True)
            self._progress("importing it as %s" % BOOTSTRAP_TAG)
            repository, tag = BOOTSTRAP_TAG.split(":")
            try:
                self._client.api.import_image_from_file(
                    tarball,
                    repository=repository,
                    tag=tag,
                    changes=['LABEL %s="%s"' % (HASH_LABEL, bootstrap_hash), 'CMD ["/bin/bash"]'],
                )
            except docker.errors.APIError as exc:
                raise ImageError("docker import of the root filesystem failed: %s" % exc.explanation) from None
        self._progress("made %s in %.1f s" % (BOOTSTRAP_TAG, time.monotonic() - started))

    def _run_with_progress(self, command: list[str]) -> None:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert process.stdout is not None
        recent: list[str] = []
        for line in process.stdout:
            recent.append(line)
            # debootstrap prints a line per package; show the steps, not every package.
            if (
                line.startswith("I: ")
                and not line.startswith(
                    ("I: Retrieving", "I: Validating", "I: Extracting", "I: Unpacking", "I: Configuring")
                )
            ) or line.startswith(("E: ", "W: ")):
                self._progress("[debootstrap] %s" % line.rstrip())
        if process.wait() != 0:
            raise ImageError("debootstrap failed (exit %d):\n%s" % (process.returncode, "".join(recent[-20:])))
