"""Images added with ``sandkasten images add``: their catalog in the store, and their builds.

An added image NAME is ``sandkasten/runtime:NAME``, made the way the built-in images are:

1. from a Dockerfile only: the admin's Dockerfile and its context -> ``sandkasten/layers:NAME``;
2. ``images/custom-runner/Dockerfile`` on that layer, or on the ``--from`` image ->
   ``sandkasten/runtime:NAME``: python3 and bash where they are missing (from Debian's or
   Ubuntu's own mirror), the sandbox user, and the runner.

Each image carries the source-hash label of ``images``: of the Dockerfile, its context and
the images it starts from (step 1), of the runner and the layer's id (step 2). A repeated
add or build of an unchanged image is a no-op, and a change to any of them leaves it
``outdated`` until ``sandkasten images build`` builds it again.

Building runs the Dockerfile's steps as root with Docker's default capabilities and
network, outside every sandbox's hardening: adding and building images is for admins on
the host (the CLI), never a user's API call. Sessions name an added image as they name a
built-in one (``Settings.resolve_image`` asks ``ImageCatalog``), once
``security.allowed_images`` lets them.
"""

from __future__ import annotations

import io
import os
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors

from .config import runtime_tag
from .dockerfile_sources import DockerfileSources
from .errors import EngineError, ImageError, ImageInUse, ImageNotFound
from .image_catalog import ImageCatalog, check_name
from .image_leftovers import remove_dangling_descendants, remove_superseded
from .images import (
    HASH_LABEL,
    BuildFailed,
    BuildOutcome,
    BuildStep,
    ImageBuilder,
    Progress,
    build_files,
    build_step,
    custom_runner_files,
    docker_build,
    hash_sources,
    local_image,
    source_label,
)
from .store import ImageRow, Store

# On an added image: what it was made from ("dockerfile:<path>" or "from:<image>"), so that a second
# state directory adding the same image shares it, and one adding another under the name is refused.
ORIGIN_LABEL = "sandkasten.added-from"
KERNEL_FLAG = "/opt/sandkasten/kernel"  # written by images/custom-runner/Dockerfile: 1 with ipykernel
REFUSED_EXIT = "returned a non-zero code: 3"  # the custom-runner Dockerfile's refusals


def layers_tag(name: str) -> str:
    """Where an added image's own Dockerfile build goes (step 1)."""
    return "sandkasten/layers:%s" % name


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _building(row: ImageRow) -> bool:
    """Whether a live process builds ``row`` now (a build whose process died is over)."""
    return row.state == "building" and row.build_pid is not None and _alive(row.build_pid)


def _origin(row: ImageRow) -> str:
    return "%s:%s" % (row.kind, row.source)


@dataclass(frozen=True)
class _Step:
    """A build step of an added image, with how to run it."""

    step: BuildStep
    run: Callable[[], None]
    missing: str | None = None  # the image it starts from, when that is not here


class CustomImages:
    """Adds, builds, lists and removes the images of one state directory's catalog."""

    def __init__(self, store: Store, client: docker.DockerClient, progress: Progress = print) -> None:
        self._store = store
        self._client = client
        self._progress = progress
        self.catalog = ImageCatalog(store)

    # -- adding and building ------------------------------------------------------------

    def add(
        self,
        name: str,
        dockerfile: str | None = None,
        context: str | None = None,
        from_image: str | None = None,
        added_by: str | None = None,
    ) -> list[BuildOutcome]:
        """Add ``name``, from a Dockerfile (its context: ``context``, default the Dockerfile's folder) or on top
        of the local image ``from_image``, and build it; an image that fails to build stays listed as failed."""
        check_name(name)
        if (dockerfile is None) == (from_image is None):
            raise EngineError("an added image comes from a Dockerfile or from an image: give one of the two")
        if context is not None and dockerfile is None:
            raise EngineError("a build context goes with a Dockerfile")
        known = self._store.get_image(name)
        if known is not None:
            raise EngineError(
                "an image named %r was added already (from %s); `sandkasten images build %s` builds it again, "
                "`sandkasten images remove %s` removes it" % (name, known.source, name, name)
            )
        if dockerfile is not None:
            sources = DockerfileSources.of(dockerfile, context)
            sources.parents()  # a Dockerfile that cannot be read fails here, before anything is recorded
            kind, source, folder = "dockerfile", str(sources.dockerfile), str(sources.context)
        else:
            assert from_image is not None
            self._require_local(name, from_image)
            kind, source, folder = "from", from_image, None
        row = ImageRow(name, kind, source, folder, time.time(), added_by, "building", build_pid=os.getpid())
        self._check_tag_free(row)
        if not self._store.add_image(row):
            raise EngineError("an image named %r was added meanwhile" % name)
        self._store.add_event(None, "image_added", image=name, made_from=_origin(row), by=added_by)
        return self._build_claimed(row, force=False)

    def build(self, names: list[str] | None = None, force: bool = False) -> list[BuildOutcome]:
        """Build the named added images (default all) that are not current; each failure is reported after
        the others were built, in one ``ImageError``."""
        rows = [self.get(name) for name in names] if names else self._store.list_images()
        outcomes: list[BuildOutcome] = []
        failures: list[str] = []
        for row in rows:
            claimed_row, claimed = self._store.claim_image_build(row.name, os.getpid(), _building)
            if claimed_row is None:
                continue  # removed meanwhile
            if not claimed:
                failures.append("%s is being built by process %s" % (row.name, claimed_row.build_pid))
                continue
            try:
                outcomes += self._build_claimed(claimed_row, force)
            except EngineError as exc:
                self._progress("sandkasten: %s failed: %s" % (row.name, exc))
                failures.append("%s: %s" % (row.name, exc))
        if failures:
            raise ImageError("%d added image(s) failed to build:\n%s" % (len(failures), "\n".join(failures)))
        return outcomes

    def _build_claimed(self, row: ImageRow, force: bool) -> list[BuildOutcome]:
        """Build ``row``, which this process has marked as building, and record how it went."""
        started = time.time()
        tags = [runtime_tag(row.name), *([layers_tag(row.name)] if row.kind == "dockerfile" else [])]
        before = {tag: self._image_id(tag) for tag in tags}
        try:
            outcomes = [self._run(self._layer_step(row), force)] if row.kind == "dockerfile" else []
            outcomes.append(self._run(self._runner_step(row), force))
            built = any(outcome.built for outcome in outcomes)
            kernel = self._has_kernel(runtime_tag(row.name)) if built or row.built_at is None else row.kernel
        except BaseException as exc:
            reason = str(exc) or type(exc).__name__
            self._store.update_image(row.name, state="failed", build_pid=None, last_error=reason)
            self._store.add_event(None, "image_build_failed", image=row.name, error=reason[:2000])
            raise
        built_at = time.time() if built or row.built_at is None else row.built_at
        self._store.update_image(
            row.name, state="built", build_pid=None, last_error=None, kernel=kernel, built_at=built_at
        )
        if built:
            self._store.add_event(None, "image_built", image=row.name, seconds=round(time.time() - started, 1))
            for tag in tags:  # the runner layer first: the old one was built on the old layer
                if self._image_id(tag) != before[tag]:
                    remove_superseded(self._client, before[tag])
        return outcomes

    def _run(self, step: _Step, force: bool) -> BuildOutcome:
        if step.missing is not None and (force or not self._is_current(step)):
            raise ImageError("%s needs %s, which is missing" % (step.step.tag, step.missing))
        return build_step(self._client, self._progress, step.step, force, step.run)

    def _is_current(self, step: _Step) -> bool:
        return source_label(local_image(self._client, step.step.tag)) == step.step.source_hash

    # -- the two steps ----------------------------------------------------------------------

    def _layer_step(self, row: ImageRow) -> _Step:
        """Step 1 of an image from a Dockerfile: the admin's build, as ``sandkasten/layers:NAME``."""
        sources = DockerfileSources.of(row.source, row.context)
        parents = sources.parents()
        ids = [self._id(ref) for ref in parents]
        source_hash = hash_sources([], "dockerfile", sources.context_digest(), *ids)
        step = BuildStep(row.name, layers_tag(row.name), ", ".join(parents) or "scratch", source_hash)
        missing = [ref for ref, found in zip(parents, ids, strict=True) if found.startswith("missing:")]

        def run() -> None:
            try:
                docker_build(
                    self._client,
                    self._progress,
                    row.name,
                    step.tag,
                    str(sources.context),
                    {},
                    {HASH_LABEL: source_hash, ORIGIN_LABEL: _origin(row)},
                    dockerfile=str(sources.dockerfile),
                )
            except BuildFailed as exc:
                raise _reason(row, exc, missing_parents=missing) from None

        return _Step(step, run)

    def _runner_step(self, row: ImageRow) -> _Step:
        """Step 2: the runner on the layer (or the ``--from`` image), as ``sandkasten/runtime:NAME``."""
        base = layers_tag(row.name) if row.kind == "dockerfile" else row.source
        tag = runtime_tag(row.name)
        files = custom_runner_files()
        source_hash = hash_sources(files, self._id(base))
        labels = {HASH_LABEL: source_hash, ORIGIN_LABEL: _origin(row)}

        def run() -> None:
            try:
                build_files(self._client, self._progress, row.name, tag, files, {"BASE": base}, labels)
            except BuildFailed as exc:
                raise _reason(row, exc, base=base) from None

        missing = None if local_image(self._client, base) is not None else base
        return _Step(BuildStep(row.name, tag, base, source_hash), run, missing)

    def _id(self, ref: str) -> str:
        return self._image_id(ref) or "missing:" + ref

    def _image_id(self, ref: str) -> str | None:
        image = local_image(self._client, ref)
        return image.id if image is not None else None

    # -- checks ---------------------------------------------------------------------------

    def _require_local(self, name: str, ref: str) -> None:
        if ref in (runtime_tag(name), layers_tag(name)):
            raise EngineError("%s is the image being added; give the image it starts from" % ref)
        try:
            found = local_image(self._client, ref)
        except docker.errors.APIError as exc:
            raise ImageError("%r is not an image reference: %s" % (ref, exc.explanation or exc)) from None
        if found is None:
            raise ImageError(
                "%s is not on this machine: an image is added from a local image only (no registry is asked). "
                "`docker pull` it where a registry can be reached, or bring it with `docker load -i IMAGE.tar` "
                "(from `docker save`) or `docker import ROOTFS.tar %s`" % (ref, ref)
            )

    def _check_tag_free(self, row: ImageRow) -> None:
        """Refuse to take over a sandkasten/runtime:NAME made from something else (another state directory's
        image of that name, or one tagged by hand); one made from the same source is shared."""
        image = local_image(self._client, runtime_tag(row.name))
        origin = (image.labels or {}).get(ORIGIN_LABEL) if image is not None else None
        if image is not None and origin != _origin(row):
            raise EngineError(
                "%s exists already, made from %s: give the image another name, or remove that one (docker rmi)"
                % (runtime_tag(row.name), origin or "something other than `sandkasten images add`")
            )

    def _has_kernel(self, tag: str) -> bool:
        """Whether the image's runner layer found ipykernel (read from the image, without starting it)."""
        container = self._client.api.create_container(tag, network_disabled=True)
        try:
            stream, _ = self._client.api.get_archive(container["Id"], KERNEL_FLAG)
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
                member = archive.next()
                flag = archive.extractfile(member) if member is not None else None
                return flag is not None and flag.read(8).strip() == b"1"
        except docker.errors.NotFound:
            return False
        finally:
            self._client.api.remove_container(container["Id"], force=True)

    # -- listing and removing ---------------------------------------------------------------

    def get(self, name: str) -> ImageRow:
        """The added image ``name``; ``ImageNotFound`` when none was added under it."""
        row = self._store.get_image(name)
        if row is None:
            raise ImageNotFound("no image %r was added (`sandkasten images list` shows them)" % name)
        return row

    def listing(self) -> list[dict[str, Any]]:
        """The built-in images, then the added ones: name, tag, kind, parent, state (current, outdated,
        missing, building or failed, with the error), size, and whether each has a Jupyter kernel."""
        return builtin_listing(self._client) + [self._view(row) for row in self._store.list_images()]

    def _view(self, row: ImageRow) -> dict[str, Any]:
        tag = runtime_tag(row.name)
        image = local_image(self._client, tag)
        state, error, parent = self._state(row, image)
        return dict(
            _EMPTY_ROW,
            name=row.name,
            tag=tag,
            kind=row.kind,
            parent=parent,
            source=row.source,
            context=row.context,
            state=state,
            error=error,
            id=image.id if image is not None else None,
            size_bytes=image.attrs.get("Size") if image is not None else None,
            kernel=row.kernel,
            added_at=row.added_at,
            added_by=row.added_by,
            built_at=row.built_at,
        )

    def _state(self, row: ImageRow, image: Any | None) -> tuple[str, str | None, str | None]:
        """(state, error, parent) of an added image as it is now."""
        parent = row.source if row.kind == "from" else self._dockerfile_parents(row)
        if row.state == "building":
            if _building(row):
                return "building", None, parent
            return "failed", "its build (process %s) ended before it finished" % row.build_pid, parent
        if row.state == "failed":
            return "failed", row.last_error, parent
        try:
            steps = [self._layer_step(row)] if row.kind == "dockerfile" else []
            steps.append(self._runner_step(row))
        except ImageError as exc:
            return ("outdated" if image is not None else "missing"), str(exc), parent
        if image is None:
            return "missing", None, parent
        gone = next((step.missing for step in steps if step.missing), None)
        if all(self._is_current(step) for step in steps):
            return "current", None, parent
        return "outdated", ("%s is missing" % gone if gone else None), parent

    @staticmethod
    def _dockerfile_parents(row: ImageRow) -> str | None:
        try:
            return ", ".join(DockerfileSources.of(row.source, row.context).parents()) or "scratch"
        except ImageError:
            return None  # its Dockerfile is gone: the state says so

    def remove(self, name: str) -> None:
        """Remove the added image ``name``: its tags in Docker and its record. The caller has made sure no
        session or warm pool uses it; Docker still refuses while any container does (``ImageInUse``)."""
        row = self.get(name)
        if _building(row):
            raise ImageInUse(
                "image %r is being built (process %s): remove it once that is over" % (name, row.build_pid)
            )
        tags = [runtime_tag(name), *([layers_tag(name)] if row.kind == "dockerfile" else [])]
        for tag in tags:
            image_id = self._image_id(tag)
            if tag != tags[0] and image_id is not None:
                remove_dangling_descendants(self._client, image_id)  # failed builds' steps on its own layer
            try:
                self._client.images.remove(tag)
            except docker.errors.ImageNotFound:
                pass
            except docker.errors.APIError as exc:
                if exc.status_code == 409:
                    raise ImageInUse("Docker keeps %s: %s" % (tag, exc.explanation or exc)) from None
                raise ImageError("docker could not remove %s: %s" % (tag, exc.explanation or exc)) from None
        self._store.remove_image(name)
        self._store.add_event(None, "image_removed", image=name)


# The keys of a listed image that only added images fill in.
_EMPTY_ROW: dict[str, Any] = {
    "kind": "builtin",
    "source": None,
    "context": None,
    "error": None,
    "kernel": True,
    "added_at": None,
    "added_by": None,
    "built_at": None,
}


def builtin_listing(client: docker.DockerClient) -> list[dict[str, Any]]:
    """The built-in images as ``CustomImages.listing`` shows them."""
    return [
        dict(_EMPTY_ROW, **{key: row[key] for key in ("name", "tag", "parent", "state", "id", "size_bytes")})
        for row in ImageBuilder(client, progress=lambda line: None).status()
    ]


def _reason(
    row: ImageRow, failed: BuildFailed, base: str | None = None, missing_parents: list[str] | None = None
) -> ImageError:
    """A failed build as a reason an admin can act on: ``base`` is the image the runner layer was built on
    (None: the failure is of the admin's own Dockerfile), ``missing_parents`` what it starts from that is not
    here."""
    told = [line.strip() for line in failed.output if line.strip().startswith("sandkasten: ")]
    if REFUSED_EXIT in failed.error and told:
        return ImageError("cannot build %s: %s" % (row.name, told[-1].removeprefix("sandkasten: ")))
    if base is not None and ('"/bin/sh"' in failed.error or "/bin/sh: no such file" in failed.error):
        return ImageError(
            "cannot build %s: %s has no /bin/sh, and the runner layer needs /bin/sh to set the image up (then "
            "python3 >= 3.9 and bash to run); an image without a shell (scratch, distroless) cannot be a "
            "sandbox image" % (row.name, base)
        )
    if missing_parents:
        return ImageError(
            "%s\n(%s: not on this machine, and with no registry to pull from, `docker load` or `docker import` "
            "it first)" % (failed, ", ".join(missing_parents))
        )
    return failed
