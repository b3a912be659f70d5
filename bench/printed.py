"""The printed report of a suite run: one line per path, medians, p99s and ratios, then the targets."""

from __future__ import annotations

from typing import Any

from bench.report import print_rows


def _timing(figures: dict[str, Any]) -> str:
    return "%8.2f ms p50  %8.2f ms p99  (n=%d)" % (figures["median_ms"], figures["p99_ms"], figures["n"])


def _speedups(speedups: dict[str, dict[str, float]]) -> list[tuple[str, str]]:
    return [
        ("  %s" % name.replace("_", " "), "%sx p50, %sx p99" % (s["median"], s["p99"])) for name, s in speedups.items()
    ]


def _paths(title: str, figures: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [(title, "")]
    rows += [
        ("  " + name, _timing(value))
        for name, value in figures.items()
        if isinstance(value, dict) and "median_ms" in value
    ]
    return rows + _speedups(figures.get("speedup", {}))


def _left_behind(figures: dict[str, Any]) -> list[tuple[str, str]]:
    """What a figure's sessions left behind, if it counted (runs before 2026-11-30 did not)."""
    if "left_behind" not in figures:
        return []
    left = figures["left_behind"]
    return [("  left behind", "%(sessions)d sessions, %(containers)d containers, %(run_dirs)d run dirs" % left)]


BURST_PATHS = ("sandkasten_first", "sandkasten_repeat", "llm_sandbox", "docker_run_exec")


def _bursts(figures: dict[str, Any]) -> list[tuple[str, str]]:
    out = [("11. burst: N creates -> first exec, all done (s)", " / ".join(BURST_PATHS))]
    for clients in figures["sizes"]:
        level = figures[str(clients)]
        warm = "  (warm: %d, then %d)" % (level["sandkasten_first"]["warm"], level["sandkasten_repeat"]["warm"])
        out.append(("  %d clients" % clients, " / ".join(str(level[p]["seconds"]) for p in BURST_PATHS) + warm))
    return out


def _custom_images(figures: dict[str, Any]) -> list[tuple[str, str]]:
    out = [("13. sandkasten images add: first build / repeated (no-op)", "")]
    for kind in ("dockerfile", "from"):
        part = figures[kind]
        out.append(
            ("  %s: %s" % (kind, part["made_from"]), "%8.1f s first  %s" % (part["first_s"], _timing(part["repeated"])))
        )
    return out


EGRESS_MODES = (
    ("proxy", "through the proxy"),
    ("direct_name", "direct, by name"),
    ("direct_address", "direct, by address"),
)


def _ms(timing: dict[str, Any]) -> str:
    return "%8.1f ms p50  %8.1f ms p99  (n=%d)" % (timing["median_ms"], timing["p99_ms"], timing["n"])


def _snapshots(figures: dict[str, Any]) -> list[tuple[str, str]]:
    out = [
        ("14. pause / resume", _ms(figures["pause_resume"]["pause"]) + " / " + _ms(figures["pause_resume"]["resume"]))
    ]
    for kind in ("tmpfs", "named"):
        part = figures["workspace_%s_100mb" % kind]
        out += [
            ("14. 100 MB workspace (%s): snapshot" % kind, _ms(part["snapshot"])),
            ("  session from the snapshot, to first exec", _ms(part["session_from_snapshot"])),
            ("  fork of %d" % figures["forks"], _ms(part["fork_of_%d" % figures["forks"]])),
        ]
    if "numpy" in figures:
        numpy = figures["numpy"]
        out += [
            (
                "14. numpy (%s): pip install --user, fresh session" % numpy["wheel"].split("-")[1],
                _ms(numpy["pip_install_in_a_fresh_session"]),
            ),
            ("  session from a snapshot holding it (%sx)" % numpy["speedup"], _ms(numpy["session_from_snapshot"])),
        ]
    return out


def _e2b(figures: dict[str, Any]) -> list[tuple[str, str]]:
    five, speedups = figures["five_commands"], figures["speedup"]
    return [
        ("15. E2B SDK: create to first command", _ms(figures["e2b_create_to_first_command"])),
        ("  Sandkasten SDK: create to first exec", _ms(figures["sdk_create_to_first_exec"])),
        ("15. five commands, one after another", _ms(five["sequential"])),
        ("  at once, beside the shell (%sx)" % speedups["concurrent_vs_sequential"]["median"], _ms(five["concurrent"])),
        (
            "  at once, E2B commands (%sx)" % speedups["e2b_concurrent_vs_sequential"]["median"],
            _ms(five["e2b_concurrent"]),
        ),
    ]


def _egress(figures: dict[str, Any]) -> list[tuple[str, str]]:
    out = [("12. egress: GET, a fresh connection each", figures["url"])]
    for scheme in ("http", "https"):
        if scheme not in figures:
            continue
        part = figures[scheme]
        for mode, label in EGRESS_MODES:
            timing = part[mode]
            out.append(
                (
                    "  %s %s" % (scheme, label),
                    "%8.2f ms p50  %8.2f ms p90  (n=%d)" % (timing["median_ms"], timing["p90_ms"], timing["n"]),
                )
            )
        out += [
            (
                "  %s: the proxy adds, %s" % (scheme, versus.replace("_", " ")),
                "%+.2f ms p50 (%sx)" % (a["ms"], a["ratio"]),
            )
            for versus, a in part["added"].items()
        ]
    if "https_skipped" in figures:
        out.append(("  https", "skipped: %s" % figures["https_skipped"]))
    return out


def rows(results: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if "kernel_start" in results:
        out += _paths("1. kernel start -> kernel_info", results["kernel_start"])
    if "first_exec" in results:
        out += _paths("2. create -> first exec", results["first_exec"])
    if "exec_round_trip" in results:
        for key in ("true", "1MB_output"):
            out += _paths("3. exec round trip, %s" % key, results["exec_round_trip"][key])
    if "kernel_execute" in results:
        figures = results["kernel_execute"]
        out += _paths("4. kernel execute `pass`", figures)
        out.append(("  sandboxed / local", "%sx" % figures["sandboxed_over_local"]))
    if "density" in results:
        idle = results["density"]["idle_memory"]
        held = results["density"]["sessions"]
        out.append(
            (
                "5. idle warm sandbox",
                "%s MB median, %s MB max (%d sandboxes)" % (idle["median_mb"], idle["max_mb"], idle["sandboxes"]),
            )
        )
        for step in held["steps"]:
            out.append(
                (
                    "  %d sessions held" % step["sessions"],
                    _timing(step) + "  %s MB each (mean)" % step["working_set_mb_mean"],
                )
            )
        out.append(
            (
                "  fit before exec p99 doubles",
                "%d (stopped by %s)" % (held["fits_before_p99_doubles"], held["stopped_by"]),
            )
        )
        out += _left_behind(held)
    if "concurrency" in results:
        out.append(("6. concurrent agents", ""))
        for level in results["concurrency"]["levels"]:
            cycle = level["cycle"] or {"median_ms": 0.0, "p99_ms": 0.0}
            out.append(
                (
                    "  %d agents" % level["agents"],
                    "%5.2f cycles/s, cycle p50 %.0f ms p99 %.0f ms, %d errors, %d left, server RSS %s -> %s MB"
                    % (
                        level["cycles_per_s"],
                        cycle["median_ms"],
                        cycle["p99_ms"],
                        level["errors"],
                        level["sessions_left"],
                        level.get("server_rss_mb_before"),
                        level.get("server_rss_mb_after"),
                    ),
                )
            )
        out += _left_behind(results["concurrency"])
    if "file_transfer" in results:
        out.append(("7. file transfer (MB/s, median)", "write / read / docker cp in / docker cp out"))
        for size in results["file_transfer"]["sizes"]:
            out.append(
                (
                    "  %d bytes" % size["bytes"],
                    " / ".join(
                        str(size[k]["mb_per_s"])
                        for k in ("sandkasten_write", "sandkasten_read", "docker_cp_in", "docker_cp_out")
                    ),
                )
            )
    if "sessions" in results:
        out += _paths("8. session create / destroy (SDK)", results["sessions"])
    if "client_kernels" in results:
        out += _paths("10. kernel start, clients outside the server", results["client_kernels"])
    if "bursts" in results:
        out += _bursts(results["bursts"])
    if "egress" in results:
        out += _egress(results["egress"])
    if "snapshots" in results:
        out += _snapshots(results["snapshots"])
    if "e2b" in results:
        out += _e2b(results["e2b"])
    if "image_build" in results:
        built = results["image_build"]
        out += _paths("9. images build", built)
        if "from_nothing" in built:
            out.append(("  from nothing", "%(seconds)s s, built %(built)s" % built["from_nothing"]))
    if "custom_image_build" in results:
        out += _custom_images(results["custom_image_build"])
    for target in results.get("targets", []):
        out.append(
            (
                "target: %s %s" % (target["target"], target["wanted"]),
                "%s%s  %s" % (target["value"], target["unit"], "MET" if target["met"] else "MISSED"),
            )
        )
    return out


def print_report(results: dict[str, Any]) -> None:
    print_rows(rows(results))
