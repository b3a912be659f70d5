"""Malformed frames and requests get error replies; the runner never falls over."""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

import pytest

from sandkasten_kernel.engine.errors import RunnerRequestError
from sandkasten_runner.protocol import MAX_JSON_BYTES, encode_frame, read_frame
from tests.conftest import Target


def raw_connection(target: Target) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(target.socket)
    return sock


def reply(sock: socket.socket) -> dict[str, object]:
    frame = read_frame(sock)
    assert frame is not None, "the runner closed the connection instead of replying"
    return frame[0]


def frame_of(body: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">II", len(body), len(payload)) + body + payload


def assert_error(message: dict[str, object], code: str) -> None:
    assert message["type"] == "error", message
    error = message["error"]
    assert isinstance(error, dict) and error["code"] == code and error["message"], message


def test_bad_json_gets_an_error_and_the_connection_lives_on(runner: Target) -> None:
    with raw_connection(runner) as sock:
        for body in [b"{not json", b"\xff\xfe", b"[1, 2]", b'"a string"']:
            sock.sendall(frame_of(body))
            assert_error(reply(sock), "bad_frame")
        sock.sendall(encode_frame({"id": 1, "op": "hello", "args": {"version": 1}}))
        answer = reply(sock)
        assert answer["type"] == "result" and answer["id"] == 1


def test_unknown_ops_and_bad_requests(runner: Target) -> None:
    with raw_connection(runner) as sock:
        cases: list[tuple[dict[str, Any], str]] = [
            ({"id": 1, "op": "format_disk"}, "unknown_op"),
            ({"id": 2}, "unknown_op"),
            ({"id": 3, "op": ["exec"]}, "unknown_op"),
            ({"id": 4, "op": "exec", "args": "echo hi"}, "bad_request"),
            ({"id": 5, "op": "hello", "args": {"version": 99}}, "unsupported_version"),
            ({"id": 6, "op": "kernel_start", "args": {"connection": {"transport": "tcp"}}}, "bad_request"),
            (
                {"id": 7, "op": "kernel_start", "args": {"connection": {"transport": "ipc", "shell_port": "x"}}},
                "bad_request",
            ),
        ]
        for message, code in cases:
            sock.sendall(encode_frame(message))
            answer = reply(sock)
            assert answer["id"] == message["id"]
            assert_error(answer, code)


def test_an_oversized_frame_is_refused_and_only_that_connection_closes(runner: Target) -> None:
    with raw_connection(runner) as sock:
        sock.sendall(struct.pack(">II", MAX_JSON_BYTES + 1, 0))
        assert_error(reply(sock), "frame_too_large")
        assert read_frame(sock) is None  # closed: the stream cannot be trusted after that
    with raw_connection(runner) as sock:
        sock.sendall(struct.pack(">II", 10, 1 << 31))
        assert_error(reply(sock), "frame_too_large")
    with raw_connection(runner) as sock:
        sock.sendall(struct.pack(">II", 0, 0))
        assert_error(reply(sock), "bad_frame")


def test_a_frame_cut_short_and_garbage_do_not_hurt_the_runner(runner: Target) -> None:
    with raw_connection(runner) as sock:
        sock.sendall(struct.pack(">II", 100, 0) + b'{"id": 1')  # then hang up
    with raw_connection(runner) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = reply(sock)  # b"GET " read as a length: far over the limit
        assert_error(answer, "frame_too_large")


async def test_the_runner_still_serves_after_all_that(runner: Target) -> None:
    async with await runner.client() as client:
        health = await client.health()
        assert health["shell"]["alive"]
        assert (await client.exec("echo fine")).output == "fine\n"


async def test_unknown_op_through_the_client(runner: Target) -> None:
    async with await runner.client() as client:
        with pytest.raises(RunnerRequestError) as error:
            await client.request("nope")
        assert error.value.code == "unknown_op"
        assert "exec" in error.value.message  # it lists the known ops


def test_every_reply_is_json_with_an_id(runner: Target) -> None:
    with raw_connection(runner) as sock:
        sock.sendall(encode_frame({"id": "text-id", "op": "health"}))
        answer = reply(sock)
        assert answer["id"] == "text-id" and answer["type"] == "result"
        json.dumps(answer)
