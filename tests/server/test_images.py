"""The images through the API: GET images lists built-in and added ones, DELETE images/{name} removes an
added one (admins only; 409 while it is in use), and sessions, kernels and kernelspecs take added images."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest
import yaml

from tests.conftest import ADDED_JQ, ADDED_NOPY, AddedImages, sandkasten_cli
from tests.server.conftest import Api, server_yaml

pytestmark = pytest.mark.docker

CHEAP = "sk-test-api-rm"  # python3 is in layers:base already: only the runner layer is built


@pytest.fixture
def sandkasten_yaml(state_dir: str, tmp_path: Path, added_images: AddedImages, docker_client: Any) -> Iterator[Path]:
    """A server whose state directory has both shared images and one of its own to remove, all allowed."""
    path = tmp_path / "sandkasten.yaml"
    allowed = ["base", "python", ADDED_JQ, ADDED_NOPY, CHEAP]
    path.write_text(yaml.safe_dump(server_yaml(state_dir, security={"allowed_images": allowed})))
    added_images.adopt(path)
    added = sandkasten_cli(path, "images", "add", CHEAP, "--from", "sandkasten/layers:base")
    assert added.returncode == 0, added.stdout + added.stderr
    yield path
    with contextlib.suppress(docker.errors.ImageNotFound):
        docker_client.images.remove("sandkasten/runtime:%s" % CHEAP)


def rows(api: Api) -> dict[str, dict[str, Any]]:
    reply = api.get("images")
    assert reply.status == 200, reply.body
    return {row["name"]: row for row in reply.json["images"]}


def wait_until_no_warm(api: Api, docker_client: Any, tag: str) -> None:
    """Until the pool has let go of every warm sandbox of ``tag``: a start under way ends, then goes."""
    deadline = time.monotonic() + 60
    while (status := api.get("pool").json["images"].get(tag, {})).get("starting") or docker_client.containers.list(
        all=True, filters={"label": "sandkasten.pool=%s" % tag}
    ):
        assert time.monotonic() < deadline, status
        api.run(asyncio.sleep(0.1))


def test_images_are_listed_and_used_by_name(api: Api) -> None:
    listed = rows(api)
    assert list(listed) == ["base", "python", "node", CHEAP, ADDED_JQ, ADDED_NOPY]
    jq = listed[ADDED_JQ]
    assert (jq["kind"], jq["tag"], jq["state"], jq["kernel"], jq["allowed"], jq["in_use"]) == (
        "dockerfile",
        "sandkasten/runtime:%s" % ADDED_JQ,
        "current",
        True,
        True,
        False,
    )
    assert listed["node"]["kind"] == "builtin" and not listed["node"]["allowed"]
    assert not listed[ADDED_NOPY]["kernel"] and listed[ADDED_NOPY]["kind"] == "from"

    session_id = api.session(image=ADDED_JQ)
    assert api.exec(session_id, "jq -n -M -c '[1,2] | add'")["output"].strip() == "3"
    assert rows(api)[ADDED_JQ]["in_use"]
    # The server offers a kernelspec of the image with ipykernel, and run_code takes it.
    specs = api.run(api.fetch("api/kernelspecs")).body
    assert b"sandkasten-%s" % ADDED_JQ.encode() in specs and ADDED_NOPY.encode() not in specs
    ran = api.post("sessions/%s/run_code" % session_id, {"code": "import subprocess; print(6 * 7)"})
    assert ran.status == 200 and ran.json["stdout"] == "42\n", ran.body
    plain = api.session(image="sandkasten/runtime:%s" % ADDED_NOPY)
    assert api.exec(plain, "python3 -c 'print(1 + 1)'")["output"].strip() == "2"
    for route, body in (("sessions/%s/kernel" % plain, None), ("sessions/%s/run_code" % plain, {"code": "1 + 1"})):
        refused = api.post(route, body)
        assert refused.status == 400 and "has no Jupyter kernel" in refused.json["message"], refused.body
    sessions = len(api.get("sessions").json["sessions"])
    refused = api.post("sessions", {"image": ADDED_NOPY, "with_kernel": True})
    assert refused.status == 400 and "has no Jupyter kernel" in refused.json["message"], refused.body
    assert len(api.get("sessions").json["sessions"]) == sessions  # refused before one was made


def test_removing_an_added_image(api: Api, docker_client: Any) -> None:
    builtin = api.delete("images/python")
    assert builtin.status == 400 and "built-in image" in builtin.json["message"]
    unknown = api.delete("images/sk-test-never-added")
    assert unknown.status == 404 and unknown.json["error"] == "not_found"

    session_id = api.session(image=CHEAP)
    busy = api.delete("images/%s" % CHEAP)
    assert busy.status == 409 and busy.json["error"] == "image_in_use", busy.body
    assert session_id in busy.json["message"]
    api.delete("sessions/%s" % session_id)
    resized = api.put("pool", {"images": {CHEAP: 1}})
    assert resized.status == 200, resized.body
    pooled = api.delete("images/%s" % CHEAP)
    assert pooled.status == 409 and "warm pool" in pooled.json["message"], pooled.body
    api.put("pool", {"images": {CHEAP: 0}})
    wait_until_no_warm(api, docker_client, "sandkasten/runtime:%s" % CHEAP)

    assert api.delete("images/%s" % CHEAP).status == 204
    assert CHEAP not in rows(api)
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get("sandkasten/runtime:%s" % CHEAP)
    gone = api.post("sessions", {"image": CHEAP})
    assert gone.status == 503 and "is missing" in gone.json["message"], gone.body
    kinds = [event["kind"] for event in api.get("events").json["events"] if event["session_id"] is None]
    assert "image_removed" in kinds and "image_added" in kinds
