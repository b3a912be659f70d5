"""gateway-provisioners' ``DockerProvisioner``: its kernel image and kernelspec, set up on this machine.

How it works: ``jupyter_client`` runs the kernelspec's ``launch_docker.py`` on the
host, which ``docker run``s the kernel image on the bridge network; inside, the
package's ``bootstrap-kernel.sh`` starts ``launch_ipykernel.py``, which picks TCP
ports, encrypts the connection info with the provisioner's public key and sends
it to the provisioner's response address; the provisioner then connects over TCP
to the container's bridge IP.

On this machine the one thing to set is that response address: the provisioner
binds it on the host's first "public" IP, which a container may not reach, so
``GP_RESPONSE_IP`` is the bridge's gateway (docker0), the host as every container
on the bridge sees it. ``KERNEL_USERNAME`` is set because the package refuses
kernels for ``root``.
"""

from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import docker
import docker.errors

from sandkasten_kernel.engine.images import HASH_LABEL, IMAGES

KERNEL_IMAGE = "sandkasten-bench/gateway-kernel:python"
KERNEL_NAME = "gateway-docker-python"
PARENT_IMAGE = IMAGES["python"].layers_tag  # Debian python3 + ipykernel, no Sandkasten runner
DOCKERFILE = Path(__file__).with_name("gateway_kernel") / "Dockerfile"
_SIOCGIFADDR = 0x8915  # linux/sockios.h
# The image's python: wheels are fetched for it on the host.
WHEEL_PLATFORM = ["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"] + [
    arg
    for tag in ("manylinux_2_36_x86_64", "manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
    for arg in ("--platform", tag)
]


def package_version() -> str:
    return version("gateway-provisioners")


def source_hash(parent_id: str) -> str:
    """What the image is made from: the Dockerfile, the package version, the parent image."""
    digest = hashlib.sha256()
    for part in (DOCKERFILE.read_bytes(), package_version().encode(), parent_id.encode()):
        digest.update(part + b"\0")
    return digest.hexdigest()[:32]


def ensure_kernel_image(client: docker.DockerClient) -> dict[str, Any]:
    """Build the kernel image unless its label says it is current; returns whether it built and how long."""
    started = time.monotonic()
    wanted = source_hash(str(client.images.get(PARENT_IMAGE).id))
    try:
        if (client.images.get(KERNEL_IMAGE).labels or {}).get(HASH_LABEL) == wanted:
            return {"image": KERNEL_IMAGE, "built": False, "seconds": round(time.monotonic() - started, 2)}
    except docker.errors.ImageNotFound:
        pass
    with tempfile.TemporaryDirectory(prefix="sk-gateway-image-") as context:
        requirement = "gateway_provisioners==%s" % package_version()
        wheels = os.path.join(context, "wheels")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--only-binary=:all:",
                *WHEEL_PLATFORM,
                "-d",
                wheels,
                requirement,
            ],
            check=True,
        )
        Path(context, "Dockerfile").write_bytes(DOCKERFILE.read_bytes())
        client.images.build(
            path=context,
            tag=KERNEL_IMAGE,
            buildargs={"BASE": PARENT_IMAGE},
            labels={HASH_LABEL: wanted},
            rm=True,
            forcerm=True,
            pull=False,
        )
    return {"image": KERNEL_IMAGE, "built": True, "seconds": round(time.monotonic() - started, 1)}


def bridge_gateway(client: docker.DockerClient) -> str:
    """The host's address on Docker's default bridge, as its containers reach it."""
    return network_gateway(client.networks.get("bridge").attrs)


def network_gateway(attrs: dict[str, Any]) -> str:
    """A bridge network's gateway: the one its IPAM config names, else its interface's IPv4
    address, else the first host of its subnet.

    A freshly installed dockerd may report the default bridge's IPAM config as
    ``[{"Subnet": ...}]`` with no ``Gateway``, although ``docker0`` has one.
    """
    configs = [c for c in (attrs.get("IPAM") or {}).get("Config") or [] if _is_ipv4(c.get("Subnet", ""))]
    for config in configs:
        if config.get("Gateway"):
            return str(config["Gateway"]).split("/")[0]
    interface = (attrs.get("Options") or {}).get("com.docker.network.bridge.name") or (
        "docker0" if attrs.get("Name") == "bridge" else None
    )
    looked_at = ["the IPAM config %s" % json.dumps(configs)]
    if interface:
        address = interface_ipv4(interface)
        if address:
            return address
        looked_at.append("the interface %s (no IPv4 address)" % interface)
    for config in configs:
        hosts = ipaddress.ip_network(config["Subnet"], strict=False).hosts()
        first = next(hosts, None)
        if first is not None:
            return str(first)
    raise RuntimeError(
        "cannot find the gateway of Docker network %r: looked at %s" % (attrs.get("Name"), ", ".join(looked_at))
    )


def interface_ipv4(name: str) -> str | None:
    """The IPv4 address of a network interface of this host (SIOCGIFADDR), or None."""
    request = struct.pack("256s", name.encode()[:15])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            reply = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, request)
        except OSError:
            return None
    return socket.inet_ntoa(reply[20:24])


def _is_ipv4(subnet: str) -> bool:
    try:
        return ipaddress.ip_network(subnet, strict=False).version == 4
    except ValueError:
        return False


def install_kernelspec(client: docker.DockerClient, jupyter_dir: Path) -> str:
    """Install the package's own Docker kernelspec under ``jupyter_dir`` (put on JUPYTER_PATH); its name."""
    installer = Path(sys.executable).with_name("jupyter-docker-spec")
    prefix = jupyter_dir / "gateway"
    options = ["--prefix", str(prefix), "--replace", "--log-level", "WARN"]
    subprocess.run(
        [str(installer), "install", "--image-name", KERNEL_IMAGE, "--kernel-name", KERNEL_NAME, *options],
        check=True,
    )
    spec_path = prefix / "share" / "jupyter" / "kernels" / KERNEL_NAME / "kernel.json"
    spec = json.loads(spec_path.read_text())
    spec["argv"][0] = sys.executable  # the launcher needs docker-py: this venv's python, not whatever `python` is
    spec_path.write_text(json.dumps(spec, indent=1))
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        filter(None, [str(prefix / "share" / "jupyter"), os.environ.get("JUPYTER_PATH")])
    )
    # Read when gateway_provisioners is first imported, at the first kernel start.
    os.environ["GP_RESPONSE_IP"] = bridge_gateway(client)
    os.environ.setdefault("KERNEL_USERNAME", "bench")
    return KERNEL_NAME


def remove_leftover_kernels(client: docker.DockerClient) -> int:
    """Kernel containers a failed run left behind (the package labels them)."""
    leftovers = client.containers.list(all=True, filters={"label": "app=gateway-provisioners"})
    for container in leftovers:
        container.remove(force=True)
    return len(leftovers)
