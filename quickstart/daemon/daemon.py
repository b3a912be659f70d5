"""The sandkasten/daemon container's entry point: check how it was started, write its config, run the server.

``serve`` (the default command):

1. checks, through the Docker API, that the container shares the host's
   network (the egress rules of sandboxes with network must go into the host's
   iptables: in a network namespace of its own they would land in the wrong
   table, and such sandboxes would reach the host and its networks unfiltered)
   and that the state directory is mounted at its own path with shared
   propagation (the engine tells Docker to mount ``<state_dir>/sandboxes/<id>``
   into sandboxes, and the tmpfs and loop mounts it makes there must be the
   ones Docker sees);
2. uses the iptables backend (nft or legacy) that holds Docker's own chains;
3. writes ``<state_dir>/sandkasten.yaml`` on first start and keeps it, with
   ``state_dir``, ``listen`` and, where given, ``api_key`` taken from the
   environment (``SANDKASTEN_STATE_DIR``, ``SANDKASTEN_LISTEN``,
   ``SANDKASTEN_API_KEY``); without a key from the environment the file's
   (generated on first start) is used and printed;
4. execs ``sandkasten serve --config <that file>``.

``health`` asks the server's health route (the image's HEALTHCHECK).
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import tempfile
import urllib.request
from typing import Any, NoReturn

from ruamel.yaml import YAML

STATE_DIR = os.environ.get("SANDKASTEN_STATE_DIR") or "/var/lib/sandkasten"
LISTEN = os.environ.get("SANDKASTEN_LISTEN") or "127.0.0.1:8080"
CONFIG = os.path.join(STATE_DIR, "sandkasten.yaml")
HEADER = (
    "# Made by the sandkasten/daemon container on its first start; it sets state_dir, listen and (from\n"
    "# $SANDKASTEN_API_KEY, where given) api_key at every start. Every key: examples/sandkasten.full.yaml.\n"
)


def fail(message: str) -> NoReturn:
    print("sandkasten-daemon: %s" % message, file=sys.stderr, flush=True)
    sys.exit(1)


def own_container() -> dict[str, Any]:
    """This container, as the Docker engine reports it (its id is in the source of /etc/hostname)."""
    import docker  # here, not above: the health check runs every 30 s and needs none of it

    with open("/proc/self/mountinfo", encoding="utf-8") as mounts:
        found = re.search(r"/containers/([0-9a-f]{64})/hostname ", mounts.read())
    if found is None:
        fail("this does not look like a Docker container (no /etc/hostname from Docker)")
    inspected: dict[str, Any] = docker.from_env().api.inspect_container(found.group(1))
    return inspected


def check_container(container: dict[str, Any]) -> None:
    """Refuse to start where sandboxes would be less isolated, or unreachable, than on the host."""
    host_config = container["HostConfig"]
    if host_config.get("NetworkMode") != "host":
        fail(
            "run this container with the host's network (network_mode: host): the firewall rules that keep "
            "sandboxes with network off the host and its networks must go into the host's iptables"
        )
    mount = next((m for m in container["Mounts"] if m.get("Destination") == STATE_DIR), None)
    if mount is None or mount.get("Source") != STATE_DIR:
        fail(
            "mount the state directory at its own path (-v %s:%s:rshared): Docker mounts "
            "<state_dir>/sandboxes/<id> into sandboxes by the path the server names" % (STATE_DIR, STATE_DIR)
        )
    if mount.get("Propagation") not in ("shared", "rshared"):
        fail(
            "mount the state directory with shared propagation (-v %s:%s:rshared): the run directories and "
            "workspaces the server mounts there must be visible to Docker on the host" % (STATE_DIR, STATE_DIR)
        )
    if host_config.get("PidMode") != "host":
        print(
            "sandkasten-daemon: not in the host's PID namespace (pid: host): a destroy cannot kill a sandbox's "
            "processes at once through its runner, and waits for Docker's kill instead",
            flush=True,
        )


def use_hosts_iptables() -> None:
    """Write our rules with the iptables backend whose tables hold Docker's chains (nft first: it loads nothing)."""
    for backend in ("nft", "legacy"):
        saved = subprocess.run(["iptables-%s-save" % backend, "-t", "filter"], capture_output=True, text=True)
        if saved.returncode == 0 and ":DOCKER" in saved.stdout:
            for tool in ("iptables", "ip6tables"):
                path = "/usr/sbin/%s-%s" % (tool, backend)
                subprocess.run(["update-alternatives", "--set", tool, path], check=True, capture_output=True)
            return


def write_config() -> None:
    """Make or update CONFIG (a round trip: comments and every other key stay) and say where the key is."""
    yaml = YAML()
    fresh = not os.path.exists(CONFIG)
    if fresh:
        data = yaml.load(HEADER + "{}\n")
    else:
        with open(CONFIG, encoding="utf-8") as f:
            data = yaml.load(f)
    env_key = os.environ.get("SANDKASTEN_API_KEY", "")
    wanted = {"listen": LISTEN, "state_dir": STATE_DIR, "api_key": env_key or data.get("api_key") or ""}
    if not wanted["api_key"]:
        wanted["api_key"] = secrets.token_urlsafe(32)
    if fresh or any(data.get(key) != value for key, value in wanted.items()):
        data.update(wanted)
        descriptor, temporary = tempfile.mkstemp(dir=STATE_DIR, prefix=".sandkasten.yaml.")
        with os.fdopen(descriptor, "w", encoding="utf-8") as f:  # mkstemp's file is 0600
            yaml.dump(data, f)
        os.replace(temporary, CONFIG)
    if env_key:
        print("sandkasten-daemon: API key from $SANDKASTEN_API_KEY", flush=True)
    else:
        print("sandkasten-daemon: API key (api_key in %s):\n\n    %s\n" % (CONFIG, wanted["api_key"]), flush=True)


def serve(extra: list[str]) -> None:
    if not os.path.isabs(STATE_DIR):
        fail("SANDKASTEN_STATE_DIR must be an absolute path, not %r" % STATE_DIR)
    check_container(own_container())
    use_hosts_iptables()
    write_config()
    os.execvp("sandkasten", ["sandkasten", "serve", "--config", CONFIG, *extra])


def health() -> int:
    with open(CONFIG, encoding="utf-8") as f:
        settings = YAML(typ="safe").load(f)
    host, _, port = str(settings["listen"]).rpartition(":")  # host:port: serve refuses anything else
    host = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]"}.get(host, host)
    request = urllib.request.Request(
        "http://%s:%s/sandkasten/api/health" % (host, port),
        headers={"Authorization": "token %s" % settings["api_key"]},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(exc)
        return 1


if __name__ == "__main__":
    command, *arguments = sys.argv[1:] or ["serve"]
    if command == "health":
        sys.exit(health())
    if command != "serve":
        fail("unknown command %r (serve, health)" % command)
    serve(arguments)
