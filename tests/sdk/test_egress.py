"""Domain policies through the Python SDK, without a server: what ``create_session(network=...)`` sends, and
what ``SessionInfo`` reads back (``egress``, ``egress_refused``). The engine's side is tested with Docker elsewhere.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import pytest

from sandkasten import EgressPolicy, SandboxClient, SessionInfo, SyncSandboxClient
from sandkasten_server.schema import openapi

POLICY: EgressPolicy = {"allow": ["pypi.org", "*.pythonhosted.org", "10.20.0.0/16"], "deny": ["evil.pypi.org"]}


def _session_reply(body: dict[str, Any]) -> dict[str, Any]:
    """What the server would answer to ``body``: the policy in force, as a session record shows it."""
    network = body.get("network", False)
    egress = None if isinstance(network, bool) else {"allow": network.get("allow", []), "deny": network.get("deny", [])}
    return {
        "id": "s1",
        "image": "sandkasten/runtime:python",
        "status": "running",
        "created_at": 1.0,
        "last_active": 2.0,
        "limits": {},
        "network": bool(network),
        "egress": egress,
        "egress_refused": 3,
        "owner": None,
        "warm": False,
    }


class Recorder:
    """An httpx transport that keeps each request body and answers POST sessions like the server."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        return httpx.Response(201, json=_session_reply(body))


def _valid(name: str, data: Any) -> None:
    schema = {"$ref": "#/components/schemas/%s" % name, "components": openapi()["components"]}
    jsonschema.Draft202012Validator(schema).validate(data)


@pytest.mark.parametrize(
    ("network", "sent"),
    [
        (POLICY, POLICY),
        ({"allow": ("pypi.org",)}, {"allow": ["pypi.org"]}),  # any mapping of sequences; allow alone is fine
        ({"deny": ["*.example.org"]}, {"deny": ["*.example.org"]}),  # the configuration's allow, minus these
        (True, True),
        (False, False),
    ],
)
async def test_create_session_sends_the_policy(network: Any, sent: Any) -> None:
    recorder = Recorder()
    http = httpx.AsyncClient(transport=httpx.MockTransport(recorder), base_url="http://sk/sandkasten/api/")
    async with SandboxClient(base_url="http://sk", api_key="k", http_client=http) as client:
        session = await client.create_session(network=network)
    (body,) = recorder.bodies
    assert body == {"network": sent}
    _valid("SessionCreate", body)
    assert session.info.network is True or network is False
    assert session.info.egress_refused == 3
    if isinstance(network, bool):
        assert session.info.egress is None
    else:
        assert session.info.egress == {"allow": list(network.get("allow", [])), "deny": list(network.get("deny", []))}


async def test_network_left_out_is_the_servers_default() -> None:
    recorder = Recorder()
    http = httpx.AsyncClient(transport=httpx.MockTransport(recorder), base_url="http://sk/sandkasten/api/")
    async with SandboxClient(base_url="http://sk", api_key="k", http_client=http) as client:
        await client.create_session()
    assert recorder.bodies == [{}]


def test_the_sync_client_sends_it_too() -> None:
    recorder = Recorder()
    with SyncSandboxClient(base_url="http://sk", api_key="k") as client:
        transport = client._client._transport  # the async client it drives: given the recorder instead of a network
        client._runner.run(transport.http.aclose())
        transport.http = httpx.AsyncClient(
            transport=httpx.MockTransport(recorder), base_url="http://sk/sandkasten/api/"
        )
        session = client.create_session(network={"allow": ["deb.debian.org"]})
    assert recorder.bodies == [{"network": {"allow": ["deb.debian.org"]}}]
    assert session.info.egress == {"allow": ["deb.debian.org"], "deny": []}


def test_session_info_reads_the_policy_in_force() -> None:
    reply = _session_reply({"network": POLICY})
    _valid("Session", reply)
    info = SessionInfo.from_json(reply)
    assert (info.network, info.egress, info.egress_refused) == (True, POLICY, 3)
    assert info.egress is not reply["egress"]  # a copy: changing it changes nothing of the reply
    open_network = SessionInfo.from_json(dict(reply, egress=None, egress_refused=0))
    assert (open_network.network, open_network.egress, open_network.egress_refused) == (True, None, 0)
    older_server = {k: v for k, v in reply.items() if k not in ("egress", "egress_refused")}
    assert (SessionInfo.from_json(older_server).egress, SessionInfo.from_json(older_server).egress_refused) == (None, 0)
