"""``sandkasten run``: one command line in a fresh sandbox, an engine session with the pool off."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from sandkasten_kernel.engine import Engine, EngineError, ExecResult

from .common import add_command, settings

TIMED_OUT_EXIT = 124  # as timeout(1) exits


def add_to(commands: Any) -> None:
    command = add_command(commands, "run", _run, "run one shell command in a fresh hardened sandbox, then remove it")
    command.add_argument("--image", default="base", help="an image the configuration allows (default: base)")
    command.add_argument(
        "--timeout", type=float, default=60.0, help="seconds before the command is killed (default: 60)"
    )
    command.add_argument(
        "--network",
        action="store_true",
        help="give the sandbox a network, behind the egress firewall (default: none); "
        "the operator's choice, so security.allow_network does not apply",
    )
    command.add_argument("command", nargs="+", help="the command line, run by bash in /workspace")


def _run(options: argparse.Namespace) -> int:
    result = asyncio.run(_in_sandbox(options))
    if result.truncated:
        print("[output truncated: %d bytes in all]" % result.output_bytes, file=sys.stderr)
    if result.timed_out:
        print("[timed out after %g s]" % options.timeout, file=sys.stderr)
        return TIMED_OUT_EXIT
    if result.shell_exit:
        print("[%s]" % result.shell_exit, file=sys.stderr)
    return result.exit_code if result.exit_code is not None else 1


async def _in_sandbox(options: argparse.Namespace) -> ExecResult:
    config = settings(options)
    if options.network:
        config.security.allow_network = True
    engine = Engine(config)
    try:
        # Another process (a server) may own this state directory: no reconcile, no pool, no reaper.
        await engine.start(pool=False, reaper=False, reconcile=False)
        record = await engine.create_session(image=options.image, network=options.network)
        try:
            return await _stream(engine, record.id, " ".join(options.command), options.timeout)
        finally:
            await engine.destroy_session(record.id, "sandkasten run ended")
    finally:
        await engine.close()


async def _stream(engine: Engine, session_id: str, command: str, timeout_s: float) -> ExecResult:
    async for event in engine.exec_stream(session_id, command, timeout_ms=int(timeout_s * 1000)):
        if isinstance(event, ExecResult):
            return event
        sys.stdout.write(event)
        sys.stdout.flush()
    raise EngineError("the runner ended the exec without a result")
