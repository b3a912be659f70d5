"""Configuration: ``sandkasten.yaml`` mapped onto traitlets classes.

Each YAML section is one ``Configurable``, so every option also works as
``c.<Class>.<option>`` in jupyter_server_config.py and on the command line::

    listen, api_key, state_dir        -> Sandkasten
    defaults:  image, cpus, ...       -> SandkastenDefaults
    session:   ttl_s, idle_timeout_s  -> SandkastenSession
    workspace: enabled                -> SandkastenWorkspace
    pool:      enabled, images, ...   -> SandkastenPool
    security:  allow_network, ...     -> SandkastenSecurity
    quota:     max_sessions, ...      -> SandkastenQuota

An unknown key, a wrong type or a bad value raises ``ConfigError`` naming the
key and the file.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from typing import Any, Protocol

import yaml
from traitlets import Bool, Dict, Float, Int, List, TraitError, Unicode, validate
from traitlets.config import Config, Configurable

from .egress_match import ipv4_network
from .egress_policy import DomainPolicy, parse_policy
from .errors import ConfigError as ConfigError  # re-exported: callers import it from here
from .pool_demand import PoolSize
from .pool_schedule import Schedule, parse_schedule, time_zone


class Sandkasten(Configurable):
    """The server section of sandkasten.yaml: where it listens, its token, its state directory."""

    listen = Unicode("127.0.0.1:8080", help="host:port where `sandkasten serve` listens.").tag(config=True)
    api_key = Unicode("", help="The API token (Jupyter Server's token); empty generates one at start.").tag(config=True)
    state_dir = Unicode(
        "/var/lib/sandkasten",
        help="Where the SQLite store and the sandboxes' run directories live. Keep it short: "
        "socket paths inside it must fit 107 bytes.",
    ).tag(config=True)


class SandkastenDefaults(Configurable):
    """The ``defaults:`` section: a session's image and limits unless it asks otherwise, and the most it may ask."""

    image = Unicode(
        "python",
        help="Image of a session that names none: base, python, node, or an image added with `sandkasten images add`.",
    ).tag(config=True)
    cpus = Float(1.0, help="CPUs per sandbox.").tag(config=True)
    memory_mb = Int(512, help="Memory per sandbox, MiB (swap included).").tag(config=True)
    pids = Int(256, help="Processes per sandbox.").tag(config=True)
    tmp_mb = Int(256, help="Size of the /tmp tmpfs, MiB.").tag(config=True)
    workspace_mb = Int(1024, help="Size of /workspace when it is not a named workspace (tmpfs), MiB.").tag(config=True)
    network = Bool(False, help="Whether a session has network unless it says otherwise.").tag(config=True)
    max_cpus = Float(2.0, help="Most CPUs a session may ask for.").tag(config=True)
    max_memory_mb = Int(2048, help="Most memory a session may ask for, MiB.").tag(config=True)
    max_pids = Int(1024, help="Most processes a session may ask for.").tag(config=True)

    @validate("cpus", "max_cpus")
    def _positive_float(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if value <= 0:
            raise TraitError("must be greater than 0")
        return value

    @validate("memory_mb", "pids", "tmp_mb", "workspace_mb", "max_memory_mb", "max_pids")
    def _positive_int(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if value <= 0:
            raise TraitError("must be greater than 0")
        return value


class SandkastenSession(Configurable):
    """The ``session:`` section: when sessions expire."""

    ttl_s = Int(3600, help="A session is destroyed this many seconds after it was created (0: never).").tag(config=True)
    idle_timeout_s = Int(900, help="A session unused for this many seconds is destroyed (0: never).").tag(config=True)
    reap_interval_s = Float(5.0, help="How often expired sessions are looked for, seconds.").tag(config=True)

    @validate("ttl_s", "idle_timeout_s")
    def _not_negative(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if value < 0:
            raise TraitError("must not be negative")
        return value


class SandkastenWorkspace(Configurable):
    """The ``workspace:`` section: named workspaces and their size."""

    enabled = Bool(True, help="Whether sessions may mount named workspaces (Docker volumes) at /workspace.").tag(
        config=True
    )
    size_mb = Int(
        1024,
        help="Size of a named workspace, MiB: a disk image of its own, so it cannot fill the host's disk "
        "(takes effect for workspaces made from then on).",
    ).tag(config=True)
    kernels = Unicode(
        "",
        help="A named workspace for every kernel whose kernelspec names none, from a template: {username} "
        "is the kernel's owner (their JupyterHub name), so each student's kernels share one workspace of "
        'theirs, which no one else reaches. Example: "{username}". Empty: kernels get a fresh /workspace.',
    ).tag(config=True)

    @validate("kernels")
    def _template(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"])
        try:
            value.format(username="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise TraitError("a template with {username} only: %s" % exc) from None
        return value

    @validate("size_mb")
    def _positive(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if value < 16:
            raise TraitError("must be at least 16")
        return value


class SandkastenPool(Configurable):
    """The ``pool:`` section: the warm sandboxes kept ready per image."""

    enabled = Bool(True, help="Keep warm sandboxes ready, so creating a session needs no container start.").tag(
        config=True
    )
    images: Dict[str, Any] = Dict(
        {"python": {"min": 2, "max": 32}},
        help="Warm sandboxes per image: a count keeps exactly that many ({python: 4}); a floor and a ceiling "
        "({python: {min: 2, max: 32}}) let the pool follow demand: each miss (a create that found none ready) "
        "raises the target by one up to max, and after pool.shrink_after_s without one it falls back toward min.",
    ).tag(config=True)
    with_kernel = Bool(True, help="Start the Jupyter kernel in warm sandboxes too.").tag(config=True)
    parallel_starts = Int(
        2,
        help="Most warm sandboxes the pool starts at once while it refills. Container starts are mostly CPU "
        "(runc, the runner, ipykernel): around the host's core count refills fastest without slowing live sessions.",
    ).tag(config=True)
    shrink_after_s = Float(
        300.0,
        help="Seconds without a miss after which an image's target falls halfway back to its min (and again after "
        "each further period); only for images given as {min, max}.",
    ).tag(config=True)

    schedule = List(
        Dict(),
        [],
        help="Sizes that follow the clock, for classes at known times: a list of `{cron: '<minute hour "
        "day-of-month month day-of-week>', images: {image: size}}`, e.g. `[{cron: '50 8 * * MON', images: "
        "{python: 30}}, {cron: '0 11 * * MON', images: {python: 2}}]`. Cron fields take `*`, lists, ranges, "
        "steps and the names JAN..DEC and SUN..SAT (0 and 7 are Sunday; when both day fields are restricted, "
        "either matching fires). At each minute the entry that fired last holds (the last in the list, if two "
        "fire together), at start-up too (looking back up to 7 days), until the next one fires; its sizes "
        "replace pool.images' for the images it names, and each of those targets is set to its floor. A count "
        "is the floor, and pool.images' max stays the ceiling when it is higher, so misses still grow the "
        "pool; `{min, max}` sets both; `images: {}` brings pool.images back. A resize through the API holds "
        "until the next entry fires.",
    ).tag(config=True)
    schedule_timezone = Unicode(
        "",
        help="The time zone pool.schedule's cron expressions are read in: an IANA name (Europe/Berlin), or "
        "empty for the server's local time (as cron does; in a container that is usually UTC unless TZ is set).",
    ).tag(config=True)

    @validate("images")
    def _sizes(self, proposal: dict[str, Any]) -> dict[str, Any]:
        sizes = dict(proposal["value"])
        for image, size in sizes.items():
            try:
                PoolSize.parse(size)
            except ValueError as exc:
                raise TraitError("pool size of %r: %s" % (image, exc)) from None
        return sizes

    @validate("schedule")
    def _schedule(self, proposal: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            parse_schedule(proposal["value"])
        except ValueError as exc:
            raise TraitError(str(exc)) from None
        return list(proposal["value"])

    @validate("schedule_timezone")
    def _time_zone(self, proposal: dict[str, Any]) -> str:
        try:
            time_zone(proposal["value"])
        except ValueError as exc:
            raise TraitError(str(exc)) from None
        return str(proposal["value"])

    @validate("parallel_starts")
    def _at_least_one(self, proposal: dict[str, Any]) -> int:
        if proposal["value"] < 1:
            raise TraitError("must be at least 1")
        return int(proposal["value"])

    @validate("shrink_after_s")
    def _positive_period(self, proposal: dict[str, Any]) -> float:
        if proposal["value"] <= 0:
            raise TraitError("must be more than 0 seconds")
        return float(proposal["value"])


class SandkastenSecurity(Configurable):
    """The ``security:`` section: network, egress, images and runtime that sessions may use, and who administers."""

    allow_network = Bool(False, help="Whether sessions may ask for network at all.").tag(config=True)
    allowed_images = List(
        Unicode(),
        ["base", "python", "node"],
        help="Images sessions may use: names of sandkasten images (built-in, or added with `sandkasten images "
        "add`: adding one does not allow it), or full image references.",
    ).tag(config=True)
    runtime = Unicode(
        "",
        help="The OCI runtime sandboxes run under, as registered with Docker: empty for Docker's default "
        "(runc), 'runsc' for gVisor, which puts a user-space kernel between sandboxed code and the host's.",
    ).tag(config=True)
    admin_users = List(
        Unicode(),
        [],
        help="Jupyter user names that may see and act on every session. With Jupyter Server's own token or "
        "password login there is a single user, who is always an admin.",
    ).tag(config=True)
    egress_allow = List(
        Unicode(),
        [],
        help="IPv4 networks (CIDRs, e.g. 10.20.0.0/16 for an internal package mirror) that sandboxes with network "
        "may reach although egress_deny or the ranges dropped by default (private, 100.64.0.0/10, link-local, "
        "cloud metadata addresses) cover them; matched first. The host itself stays out of reach.",
    ).tag(config=True)
    egress_deny = List(
        Unicode(),
        [],
        help="More IPv4 networks (CIDRs) that sandboxes with network may not reach, besides the ranges dropped by "
        "default. [0.0.0.0/0] with egress_allow makes an allow-list.",
    ).tag(config=True)

    egress = Dict(
        {},
        help="The domain policy of sessions with network, and the bound of every session's own: "
        "{allow: [...], deny: [...]}, each entry a name (pypi.org), *.name for its subdomains (not the name "
        "itself), or an IPv4 network. Set, a session with network reaches only what its policy allows, through "
        "a filtering proxy on a network with no other way out, and a session's network policy may narrow it, "
        "never widen it. Empty: sessions with network reach the internet (but egress_deny and the ranges "
        "dropped by default), unless they ask for a policy of their own.",
    ).tag(config=True)
    egress_subnet = Unicode(
        "172.30.240.0/20",
        help="The IPv4 network of sandboxes with a domain policy: an internal Docker network whose only way out "
        "is the filtering proxy, at its first address. Change it if it overlaps a network of the host; two "
        "servers on one host with domain policies need one each.",
    ).tag(config=True)

    @validate("egress_allow", "egress_deny")
    def _cidrs(self, proposal: dict[str, Any]) -> list[str]:
        return [_ipv4_network(value) for value in proposal["value"]]

    @validate("egress")
    def _domain_policy(self, proposal: dict[str, Any]) -> dict[str, list[str]]:
        if not proposal["value"]:
            return {}
        try:
            return parse_policy(proposal["value"], "egress").as_json()
        except ValueError as exc:
            raise TraitError(str(exc)) from None

    @validate("egress_subnet")
    def _subnet(self, proposal: dict[str, Any]) -> str:
        subnet = _ipv4_network(proposal["value"])
        if ipaddress.ip_network(subnet).prefixlen > 28:
            raise TraitError("%r is too small: give a /28 or larger" % subnet)
        return subnet

    def domain_bound(self) -> DomainPolicy | None:
        """``egress`` as a policy; None when it is not set."""
        return DomainPolicy(tuple(self.egress["allow"]), tuple(self.egress["deny"])) if self.egress else None


def _ipv4_network(value: str) -> str:
    """``value`` as an IPv4 network in normal form (an address alone is its /32), or a TraitError saying why not."""
    try:
        return ipv4_network(value)
    except ValueError as exc:
        raise TraitError(str(exc)) from None


class SandkastenQuota(Configurable):
    """The ``quota:`` section: how many sessions, cold starts and workspaces, and how large a request, are allowed."""

    max_sessions = Int(100, help="Most sessions at once, in all (0: no limit); more get 429.").tag(config=True)
    max_sessions_per_user = Int(
        20, help="Most sessions one user holds at once (0: no limit); more get 429. The API token is one user."
    ).tag(config=True)
    max_cold_starts = Int(
        4, help="Most sessions starting cold at once when the pool is empty; more get 503 with Retry-After."
    ).tag(config=True)
    cold_start_wait_s = Float(
        10.0, help="How long a create waits for a cold-start slot before it gets 503 (pool exhausted)."
    ).tag(config=True)
    max_body_mb = Int(512, help="Largest request body, MiB (chunked ones too); larger gets 413.").tag(config=True)
    max_archive_mb = Int(
        1024,
        help="Largest archive upload once decompressed (tar headers and members), MiB; larger gets 413 and what "
        "it had written is removed. The default is the default /workspace size. It bounds a decompression bomb.",
    ).tag(config=True)
    max_archive_members = Int(
        10000, help="Most members (files, directories, links) one archive upload may hold; more gets 413."
    ).tag(config=True)
    max_kernel_message_mb = Int(
        64,
        help="Largest single message the server takes from a sandboxed kernel, MiB (its ZMQ sockets' "
        "MAXMSGSIZE); a kernel sending a larger one is disconnected and the message dropped. Applies at start.",
    ).tag(config=True)
    max_workspaces_per_user = Int(
        10,
        help="Most named workspaces one user has (0: no limit); making another gets 429 until one is deleted. "
        "A single-user server's workspaces are one user's.",
    ).tag(config=True)
    max_workspaces_total_mb = Int(
        51200,
        help="Most disk all named workspaces together may claim, MiB, counting workspace.size_mb for each as it "
        "was when the workspace was made (0: no limit); a workspace beyond it gets 429.",
    ).tag(config=True)
    max_snapshots_per_user = Int(
        10, help="Most snapshots one user keeps (0: no limit); taking another gets 429 until one is deleted."
    ).tag(config=True)
    max_snapshots_total_mb = Int(
        20480,
        help="Most disk all snapshots together may take, MiB, as allocated on the host (0: no limit); a snapshot "
        "that would go beyond it gets 429. A fork's capture, kept only while its sessions start, is not "
        "counted (quota.max_snapshot_mb bounds it).",
    ).tag(config=True)
    max_snapshot_mb = Int(
        2048,
        help="Largest snapshot, MiB: the session's home directory, /tmp and workspace as archived or copied; a "
        "larger one gets 413 and nothing of it is kept.",
    ).tag(config=True)
    max_snapshot_files = Int(
        200_000,
        help="Most files (and directories and links) a snapshot takes from one place (home, /tmp, a tmpfs "
        "/workspace); more gets 413. It bounds the host's work on a tree of a million empty files.",
    ).tag(config=True)

    @validate(
        "max_sessions",
        "max_sessions_per_user",
        "max_cold_starts",
        "max_body_mb",
        "cold_start_wait_s",
        "max_workspaces_per_user",
        "max_workspaces_total_mb",
        "max_snapshots_per_user",
        "max_snapshots_total_mb",
    )
    def _not_negative(self, proposal: dict[str, Any]) -> Any:
        if proposal["value"] < 0:
            raise TraitError("must not be negative")
        return proposal["value"]

    @validate("max_archive_mb", "max_archive_members", "max_kernel_message_mb", "max_snapshot_mb", "max_snapshot_files")
    def _positive(self, proposal: dict[str, Any]) -> Any:
        if proposal["value"] < 1:
            raise TraitError("must be at least 1 (a bound on untrusted work has no 'no limit')")
        return proposal["value"]


SECTIONS: dict[str, type[Configurable]] = {
    "defaults": SandkastenDefaults,
    "session": SandkastenSession,
    "workspace": SandkastenWorkspace,
    "pool": SandkastenPool,
    "security": SandkastenSecurity,
    "quota": SandkastenQuota,
}
CONFIG_CLASSES: list[type[Configurable]] = [Sandkasten, *SECTIONS.values()]


class AddedImages(Protocol):
    """The images added with ``sandkasten images add`` to a state directory (``custom_images``), as the
    configuration names them: NAME for ``sandkasten/runtime:NAME``, like the built-in images' short names."""

    def names(self) -> set[str]:
        """The added images' names."""
        ...

    def has_kernel(self, name: str) -> bool:
        """Whether the added image ``name`` has ipykernel (so a kernelspec and warm kernels)."""
        ...


RUNTIME_REPOSITORY = "sandkasten/runtime"  # every sandbox image's tag is sandkasten/runtime:<name>


def runtime_tag(name: str) -> str:
    """The reference of the sandbox image called ``name`` (built-in or added)."""
    return "%s:%s" % (RUNTIME_REPOSITORY, name)


@dataclass
class Settings:
    """The validated configuration, one object per section, and the images added to its state directory."""

    server: Sandkasten
    defaults: SandkastenDefaults
    session: SandkastenSession
    workspace: SandkastenWorkspace
    pool: SandkastenPool
    security: SandkastenSecurity
    quota: SandkastenQuota
    # Set by whoever opens the state directory's store (the engine, ``image_catalog.attach``); None: only
    # the built-in images have short names.
    added: AddedImages | None = field(default=None, repr=False, compare=False)

    def resolve_image(self, name: str | None) -> str:
        """The image reference for ``name``, refused unless the security policy allows it.

        A sandbox image's full reference (``sandkasten/runtime:python``) is its short
        name (``python``) wherever either is written: here and in ``allowed_images``.
        That holds for the images added with ``sandkasten images add`` too.
        """
        known = self.sandbox_image_names()
        name = _short_name(name or self.defaults.image, known)
        if not self._allows(name, known):
            raise ConfigError("image %r is not allowed; allowed: %s" % (name, ", ".join(self.security.allowed_images)))
        return runtime_tag(name) if name in known else name

    def allows_image(self, name: str) -> bool:
        """Whether ``security.allowed_images`` lets sessions use ``name`` (short name or full reference)."""
        known = self.sandbox_image_names()
        return self._allows(_short_name(name, known), known)

    def _allows(self, short_name: str, known: set[str]) -> bool:
        return short_name in {_short_name(entry, known) for entry in self.security.allowed_images}

    def short_image_name(self, reference: str) -> str:
        """A sandbox image's short name for its full reference; any other reference as it is."""
        return _short_name(reference, self.sandbox_image_names())

    def sandbox_image_names(self) -> set[str]:
        """The names of the sandbox images: the built-in ones and those added to the state directory."""
        from .images import IMAGES

        return set(IMAGES) | (self.added.names() if self.added is not None else set())

    def image_has_kernel(self, reference: str) -> bool:
        """Whether sandboxes of ``reference`` can start a Jupyter kernel: an added image only if it has ipykernel."""
        if self.added is None:
            return True
        name = _short_name(reference, self.sandbox_image_names())
        return name not in self.added.names() or self.added.has_kernel(name)

    def pool_sizes(self) -> dict[str, PoolSize]:
        """The warm pool's floor and ceiling per image reference (``pool.images``)."""
        return {self.resolve_image(name): PoolSize.parse(size) for name, size in self.pool.images.items()}

    def pool_schedule(self) -> Schedule:
        """``pool.schedule`` with its time zone (``pool_schedule``)."""
        return Schedule(parse_schedule(self.pool.schedule), time_zone(self.pool.schedule_timezone))

    def check_pool_schedule(self) -> None:
        """Refuse a schedule entry naming an image sessions may not use (ConfigError naming the entry): it
        would otherwise be found only when the entry fires, perhaps minutes before a class."""
        for entry in parse_schedule(self.pool.schedule):
            for name in entry.images:
                if not self.allows_image(name):
                    raise ConfigError(
                        "pool.schedule[%d] (cron %r): image %r is not allowed; allowed: %s"
                        % (entry.index, entry.cron.text, name, ", ".join(self.security.allowed_images))
                    )


def _short_name(reference: str, known: set[str]) -> str:
    repository, _, name = reference.partition(":")
    return name if repository == RUNTIME_REPOSITORY and name in known else reference


def _traits(cls: type[Configurable]) -> dict[str, Any]:
    return cls.class_traits(config=True)


def yaml_to_config(data: Any, source: str) -> Config:
    """Map parsed YAML onto a traitlets ``Config``, refusing unknown keys."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("%s: the top level must be a mapping of keys, not %s" % (source, type(data).__name__))
    config = Config()
    for key, value in data.items():
        if key in SECTIONS:
            cls = SECTIONS[key]
            if not isinstance(value, dict):
                raise ConfigError("%s: '%s' must be a mapping, not %s" % (source, key, type(value).__name__))
            for option, option_value in value.items():
                if option not in _traits(cls):
                    known = ", ".join(sorted(_traits(cls)))
                    raise ConfigError("%s: unknown key '%s.%s' (known in %s: %s)" % (source, key, option, key, known))
                config[cls.__name__][option] = option_value
        elif key in _traits(Sandkasten):
            config.Sandkasten[key] = value
        else:
            known = ", ".join(sorted([*_traits(Sandkasten), *SECTIONS]))
            raise ConfigError("%s: unknown key '%s' (known: %s)" % (source, key, known))
    return config


def _reason(exc: TraitError) -> str:
    """traitlets says "The 'x' trait of a Y instance expected an int, not ...": keep the end."""
    text = str(exc)
    return text.split(" instance ", 1)[1] if " instance " in text else text


def settings_from(config: Config, source: str = "configuration") -> Settings:
    """Build every section from ``config``; an unknown key or bad value is an error naming it."""
    built: dict[str, Configurable] = {}
    sections: list[tuple[str, type[Configurable]]] = [("server", Sandkasten), *SECTIONS.items()]
    for section, cls in sections:
        instance = cls()
        traits = _traits(cls)
        prefix = "" if cls is Sandkasten else section + "."
        for option, value in config.get(cls.__name__, {}).items():
            if option not in traits:
                raise ConfigError(
                    "%s: unknown key '%s%s' (known: %s)" % (source, prefix, option, ", ".join(sorted(traits)))
                )
            try:
                setattr(instance, option, value)
            except TraitError as exc:
                raise ConfigError("%s: bad value for '%s%s': %s" % (source, prefix, option, _reason(exc))) from None
        built[section] = instance
    settings = Settings(**built)  # type: ignore[arg-type]
    try:
        settings.check_pool_schedule()
    except ConfigError as exc:
        raise ConfigError("%s: %s" % (source, exc)) from None
    return settings


CONFIG_ENV = "SANDKASTEN_CONFIG"
SYSTEM_CONFIG = "/etc/sandkasten/sandkasten.yaml"


def listen_address(listen: str) -> tuple[str, int]:
    """``listen`` (host:port, an IPv6 host in brackets) as (host, port); a malformed one is a ``ConfigError``."""
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError("listen must be host:port, not %r" % listen)
    return host.strip("[]"), int(port)


def user_data_dir() -> str:
    """Where ``sandkasten serve`` keeps this user's config and state: $XDG_DATA_HOME/sandkasten (~/.local/share)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "sandkasten")


def user_config_path() -> str:
    """The sandkasten.yaml ``sandkasten serve`` makes for this user on its first start."""
    return os.path.join(user_data_dir(), "sandkasten.yaml")


def config_places() -> list[str]:
    """The files every entry point looks for, in order, after ``--config`` and $SANDKASTEN_CONFIG."""
    return ["sandkasten.yaml", user_config_path(), SYSTEM_CONFIG]


def find_config(given: str | None = None) -> str | None:
    """``given``, else $SANDKASTEN_CONFIG, else the first of ``config_places()`` that exists (None: defaults).

    The server, ``sandkasten serve``, the CLI and the kernel provisioner all ask
    this, so they find the same file, and so the same state directory.
    """
    if given:
        return given
    if os.environ.get(CONFIG_ENV):
        return os.environ[CONFIG_ENV]
    return next((place for place in config_places() if os.path.exists(place)), None)


def load_settings(path: str | None = None, extra: Config | None = None) -> Settings:
    """Read ``path`` (if given), then apply ``extra`` (jupyter or command-line config) over it."""
    config = Config()
    source = "configuration"
    if path is not None:
        source = path
        try:
            with open(path, encoding="utf-8") as f:
                data = yaml.safe_load(f)
        except FileNotFoundError:
            raise ConfigError("%s: no such file" % path) from None
        except yaml.YAMLError as exc:
            raise ConfigError("%s: not valid YAML: %s" % (path, exc)) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError("%s: cannot be read: %s" % (path, exc)) from None
        config = yaml_to_config(data, path)
    if extra is not None:
        config.merge(extra)
        if path is not None:
            source = "%s (with overrides)" % path
    return settings_from(config, source)
