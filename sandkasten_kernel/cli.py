"""The ``sandkasten`` command.

sandkasten images build [NAME ...] [--force] [--mirror URL]
sandkasten images status
sandkasten run [--image NAME] [--timeout S] [--network] COMMAND
sandkasten serve [--config sandkasten.yaml] [--no-build] [-- JUPYTER SERVER OPTIONS]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time

from .cli_state import add_commands
from .engine.docker_backend import connect, remove_sandbox, start_sandbox
from .engine.errors import EngineError
from .engine.images import DEFAULT_MIRROR, IMAGES, ImageBuilder
from .engine.runner_client import ExecResult, RunnerClient
from .engine.sandbox_spec import SandboxSpec


def _progress(message: str) -> None:
    print(message, flush=True)


def _images_build(options: argparse.Namespace) -> int:
    started = time.monotonic()
    builder = ImageBuilder(connect(), progress=_progress, mirror=options.mirror)
    outcomes = builder.build(options.names or None, force=options.force)
    built = [o.tag for o in outcomes if o.built]
    print(
        "done in %.1f s: %s"
        % (time.monotonic() - started, ("built " + ", ".join(built)) if built else "every image was current")
    )
    return 0


def _images_status(options: argparse.Namespace) -> int:
    rows = ImageBuilder(connect(), progress=_progress).status()
    for row in rows:
        state = "current" if row["current"] else ("outdated" if row["present"] else "missing")
        print("%-28s %s" % (row["tag"], state))
    return 0 if all(row["current"] for row in rows) else 1


async def _stream(socket_path: str, command: str, timeout_s: float) -> ExecResult:
    async with await RunnerClient.connect(socket_path, timeout=30) as client:
        async for event in client.exec_stream(command, timeout_ms=int(timeout_s * 1000)):
            if isinstance(event, ExecResult):
                return event
            sys.stdout.write(event)
            sys.stdout.flush()
    raise EngineError("the runner ended the exec without a result")


def _run(options: argparse.Namespace) -> int:
    """One command in a fresh hardened sandbox, removed afterwards."""
    if options.image not in IMAGES:
        raise EngineError("unknown image %r; known: %s" % (options.image, ", ".join(IMAGES)))
    client = connect()
    run_dir = tempfile.mkdtemp(prefix="sk-", dir="/tmp") + "/run"
    spec = SandboxSpec(image=IMAGES[options.image].tag, run_dir=run_dir, network=options.network)
    container = start_sandbox(client, spec)
    try:
        result = asyncio.run(_stream(run_dir + "/control.sock", " ".join(options.command), options.timeout))
    finally:
        remove_sandbox(container)
        shutil.rmtree(run_dir.rsplit("/", 1)[0], ignore_errors=True)
    if result.truncated:
        print("[output truncated: %d bytes in all]" % result.output_bytes, file=sys.stderr)
    if result.timed_out:
        print("[timed out after %g s]" % options.timeout, file=sys.stderr)
        return 124
    if result.shell_exit:
        print("[%s]" % result.shell_exit, file=sys.stderr)
    return result.exit_code if result.exit_code is not None else 1


def _serve(options: argparse.Namespace) -> int:
    # The server extension sits on top of the engine; only this command needs it.
    from sandkasten_server.serve import serve

    extra = [arg for arg in options.server_args if arg != "--"]
    return serve(options.config, extra, build=not options.no_build)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sandkasten", description="Sandkasten: Docker sandboxes for agents and notebooks"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    images = commands.add_parser("images", help="build and inspect the sandbox images")
    image_commands = images.add_subparsers(dest="images_command", required=True)
    build = image_commands.add_parser(
        "build", help="build the images that are missing or older than their sources (parents first)"
    )
    build.add_argument("names", nargs="*", metavar="NAME", help="%s (default: all)" % ", ".join(IMAGES))
    build.add_argument("--force", action="store_true", help="rebuild even images that are current")
    build.add_argument(
        "--mirror", default=DEFAULT_MIRROR, help="Debian mirror for debootstrap when no base image can be pulled"
    )
    build.set_defaults(run=_images_build)
    status = image_commands.add_parser("status", help="show whether each image matches its sources (exit 1 if not)")
    status.set_defaults(run=_images_status)

    run = commands.add_parser("run", help="run one shell command in a fresh hardened sandbox, then remove it")
    run.add_argument("--image", default="base", help="%s (default: base)" % ", ".join(IMAGES))
    run.add_argument("--timeout", type=float, default=60.0, help="seconds before the command is killed (default: 60)")
    run.add_argument("--network", action="store_true", help="give the sandbox a network (default: none)")
    run.add_argument("command", nargs="+", help="the command line, run by bash in /workspace")
    run.set_defaults(run=_run)

    serve = commands.add_parser(
        "serve", help="run Jupyter Server with the Sandkasten API (builds missing images first)"
    )
    serve.add_argument(
        "--config",
        help="sandkasten.yaml (default: $SANDKASTEN_CONFIG, ./sandkasten.yaml, /etc/sandkasten/, "
        "else one made in ~/.local/share/sandkasten/)",
    )
    serve.add_argument("--no-build", action="store_true", help="do not build missing images first")
    serve.add_argument("server_args", nargs=argparse.REMAINDER, help="options passed on to Jupyter Server, after --")
    serve.set_defaults(run=_serve)

    add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    try:
        code: int = options.run(options)
    except EngineError as exc:
        print("sandkasten: error: %s" % exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("sandkasten: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
