"""The table of docs/benchmarks.md, from a suite run's JSON: ``python -m bench.markdown bench/results/<date>.json``.

Printed, not written: the page is edited by hand around it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _t(figures: dict[str, Any]) -> str:
    def ms(value: float) -> str:
        return "%.0f" % value if value >= 100 else "%.1f" % value if value >= 10 else "%.2f" % value

    return "%s / %s ms" % (ms(figures["median_ms"]), ms(figures["p99_ms"]))


def _x(speedup: dict[str, float]) -> str:
    return "**%sx** (p99 %sx)" % (speedup["median"], speedup["p99"])


def table(r: dict[str, Any]) -> list[str]:
    k, f, e, x = r["kernel_start"], r["first_exec"], r["exec_round_trip"], r["kernel_execute"]
    d, c = r["density"], r["concurrency"]["levels"]
    rows = [
        ("**1. Kernel start → kernel_info**", "", ""),
        ("Sandkasten provisioner, warm pool", _t(k["sandkasten_warm"]), ""),
        ("Sandkasten provisioner, cold", _t(k["sandkasten_cold"]), ""),
        ("local ipykernel, no sandbox", _t(k["local_ipykernel"]), _x(k["speedup"]["warm_vs_local_ipykernel"])),
        (
            "gateway-provisioners `DockerProvisioner`",
            _t(k["gateway_docker_provisioner"]),
            _x(k["speedup"]["warm_vs_gateway"]),
        ),
        ("**2. Session create → first exec result**", "", ""),
        ("Sandkasten REST (SDK), warm pool", _t(f["sandkasten_warm"]), ""),
        ("Sandkasten REST (SDK), cold", _t(f["sandkasten_cold"]), ""),
        ("llm-sandbox (Docker backend)", _t(f["llm_sandbox"]), _x(f["speedup"]["warm_vs_llm_sandbox"])),
        (
            "`docker run` + `docker exec` (docker-py)",
            _t(f["docker_run_exec"]),
            _x(f["speedup"]["warm_vs_docker_run_exec"]),
        ),
    ]
    for key, title in (("true", "`true`"), ("1MB_output", "1 MB of output")):
        part = e[key]
        sync = (
            [("the same through `SyncSandboxClient`", _t(part["sandkasten_sdk_sync"]), "")]
            if "sandkasten_sdk_sync" in part
            else []
        )
        rows += [
            ("**3. Exec round trip, %s**" % title, "", ""),
            ("Sandkasten REST through the Python SDK", _t(part["sandkasten_sdk"]), ""),
            *sync,
            ("Sandkasten REST, kept-alive stdlib client", _t(part["sandkasten_http_stdlib"]), ""),
            ("runner socket (no HTTP)", _t(part["runner_socket"]), ""),
            ("`docker exec`, same container", _t(part["docker_exec"]), _x(part["speedup"]["sdk_vs_docker_exec"])),
            ("llm-sandbox `execute_command`", _t(part["llm_sandbox"]), _x(part["speedup"]["sdk_vs_llm_sandbox"])),
        ]
    rows += [
        ("**4. Kernel execute round trip (`pass`)**", "", ""),
        ("sandboxed kernel (ZMQ over ipc)", _t(x["sandkasten_ipc"]), "%sx the local time" % x["sandboxed_over_local"]),
        ("local ipykernel", _t(x["local_ipykernel"]), ""),
        ("**5. Density**", "", ""),
        (
            "idle warm sandbox (runner, bash, ipykernel), working set",
            "%s MB median, %s MB max" % (d["idle_memory"]["median_mb"], d["idle_memory"]["max_mb"]),
            "",
        ),
    ]
    held = d["sessions"]
    first = held["steps"][0]
    for step in held["steps"]:
        rows.append(
            (
                "%d sessions held: exec `true` (SDK)" % step["sessions"],
                _t(step),
                "%s MB a session (mean)" % step["working_set_mb_mean"],
            )
        )
    rows.append(
        (
            "sessions held before exec p99 doubles (> %.1f ms)" % (2 * first["p99_ms"]),
            "**%s%d**" % ("≥ " if held["stopped_by"] != "p99 doubled" else "", held["fits_before_p99_doubles"]),
            "stopped by %s" % held["stopped_by"],
        )
    )
    rows.append(("**6. Agents looping create → write → exec → read → destroy**", "", ""))
    for level in c:
        cycle = level["cycle"]
        rows.append(
            (
                "%d agents, %.0f s" % (level["agents"], level["seconds"]),
                "%.2f cycles/s, cycle %s" % (level["cycles_per_s"], _t(cycle)),
                "**%d errors**, %d sessions left" % (level["errors"], level["sessions_left"]),
            )
        )
    if "left_behind" in r["concurrency"]:
        left = (
            "%(sessions)d sessions, %(containers)d containers, %(run_dirs)d run dirs" % r["concurrency"]["left_behind"]
        )
        rows.append(("left behind after the last level", left, ""))
    rows.append(("**7. File transfer (MB/s, median)**", "write / read", "`docker cp` in / out"))
    for size in r["file_transfer"]["sizes"]:
        rows.append(
            (
                "%s" % _size(size["bytes"]),
                "%.3g / %.3g" % (size["sandkasten_write"]["mb_per_s"], size["sandkasten_read"]["mb_per_s"]),
                "%.3g / %.3g" % (size["docker_cp_in"]["mb_per_s"], size["docker_cp_out"]["mb_per_s"]),
            )
        )
    rows += _later_figures(r)
    lines = ["| figure | median / p99 | Sandkasten is ... faster (medians) |", "|---|---|---|"]
    lines += ["| %s | %s | %s |" % row for row in rows]
    lines += ["", "| target | wanted | measured | |", "|---|---|---|---|"]
    lines += [
        "| %s | %s | %s%s | %s |"
        % (t["target"], t["wanted"], t["value"], t["unit"], "met" if t["met"] else "**missed**")
        for t in r["targets"]
    ]
    return lines


def _later_figures(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Figures 8 to 13, which earlier runs do not have (8-10 came on 2026-11-30, 11 to 13 later)."""
    rows = []
    if "sessions" in r:
        s = r["sessions"]
        rows += [
            ("**8. Session create and destroy (SDK)**", "", ""),
            ("create, warm pool", _t(s["create_warm"]), _x(s["speedup"]["warm_vs_docker_run_true"])),
            ("create, cold", _t(s["create_cold"]), ""),
            ("create with a named workspace (always cold)", _t(s["create_named_workspace"]), ""),
            ("destroy", _t(s["destroy"]), ""),
            ("`docker run` of `true`", _t(s["docker_run_true"]), ""),
        ]
    if "image_build" in r:
        built = r["image_build"]
        rows += [
            ("**9. `sandkasten images build`**", "", ""),
            ("every image current", _t(built["current"]), ""),
        ]
        if "from_nothing" in built:
            rows.append(("from nothing (debootstrap included)", "%s s" % built["from_nothing"]["seconds"], ""))
    if "custom_image_build" in r:
        built = r["custom_image_build"]
        rows.append(("**13. `sandkasten images add`: first build, then repeated (no-op)**", "", ""))
        for kind in ("dockerfile", "from"):
            rows.append(
                (built[kind]["made_from"], "%s s, then %s" % (built[kind]["first_s"], _t(built[kind]["repeated"])), "")
            )
    if "client_kernels" in r:
        c = r["client_kernels"]
        rows += [
            ("**10. Kernel start for clients outside the server (to kernel_info)**", "", ""),
            (
                "agent process, warm (the server's pool)",
                _t(c["agent_warm"]),
                _x(c["speedup"]["agent_warm_vs_local_ipykernel"]),
            ),
            ("agent process, no server (cold fallback)", _t(c["agent_cold_no_server"]), ""),
            ("agent process, local ipykernel", _t(c["agent_local_ipykernel"]), ""),
            (
                "Jupyter Server with --gateway-url, warm",
                _t(c["gateway_warm"]),
                _x(c["speedup"]["gateway_warm_vs_local_ipykernel"]),
            ),
            ("Jupyter Server with --gateway-url, empty pool", _t(c["gateway_cold"]), ""),
            ("plain Jupyter Server, local ipykernel", _t(c["jupyter_server_local_ipykernel"]), ""),
        ]
    if "bursts" in r:
        b = r["bursts"]
        rows.append(("**11. Burst: N creates → first exec at once, until the last result**", "", ""))
        for clients in b["sizes"]:
            level = b[str(clients)]
            first, repeat = level["sandkasten_first"], level["sandkasten_repeat"]
            rows += [
                (
                    "%d clients, Sandkasten, pool at its floor (%d warm)" % (clients, first["warm"]),
                    "%s s" % first["seconds"],
                    "**%sx** llm-sandbox" % first["speedup_vs_llm_sandbox"],
                ),
                (
                    "%d clients, Sandkasten, pool after one burst (%d warm)" % (clients, repeat["warm"]),
                    "%s s" % repeat["seconds"],
                    "**%sx** llm-sandbox" % repeat["speedup_vs_llm_sandbox"],
                ),
                ("%d clients, llm-sandbox" % clients, "%s s" % level["llm_sandbox"]["seconds"], ""),
                (
                    "%d clients, `docker run` + `docker exec`" % clients,
                    "%s s" % level["docker_run_exec"]["seconds"],
                    "",
                ),
            ]
    if "egress" in r:
        rows += _egress(r["egress"])
    if "snapshots" in r:
        rows += _snapshots(r["snapshots"])
    if "e2b" in r:
        rows += _e2b(r["e2b"])
    return rows


def _e2b(g: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Figure 15: E2B's SDK against Sandkasten next to its own, and five commands at once in one sandbox."""
    five, speedups = g["five_commands"], g["speedup"]
    return [
        ("**15. E2B's SDK, and commands at once**", "", ""),
        ("E2B `AsyncSandbox.create()` to first `commands.run` (warm)", _t(g["e2b_create_to_first_command"]), ""),
        ("Sandkasten SDK `create_session` to first `exec` (warm)", _t(g["sdk_create_to_first_exec"]), ""),
        ("five `sleep 0.5` one after another (the shell)", _t(five["sequential"]), ""),
        (
            "five at once (exec `if_busy: process`)",
            _t(five["concurrent"]),
            "**%sx**" % speedups["concurrent_vs_sequential"]["median"],
        ),
        (
            "five at once (E2B `commands.run`)",
            _t(five["e2b_concurrent"]),
            "%sx" % speedups["e2b_concurrent_vs_sequential"]["median"],
        ),
    ]


def _snapshots(g: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Figure 14: pause and resume, and snapshots and forks of a session with a 100 MB workspace."""
    pause = g["pause_resume"]
    rows = [
        ("**14. Pause, resume, snapshots and forks**", "", ""),
        ("pause / resume (REST round trip)", "%s / %s" % (_t(pause["pause"]), _t(pause["resume"])), ""),
    ]
    for kind, label in (("tmpfs", "tmpfs /workspace"), ("named", "named workspace (disk image)")):
        part = g["workspace_%s_100mb" % kind]
        rows += [
            ("100 MB in a %s: snapshot" % label, _t(part["snapshot"]), "frozen %.0f ms" % part["frozen_ms"]),
            ("  a session from it, to first exec", _t(part["session_from_snapshot"]), ""),
            ("  a fork of %d" % g["forks"], _t(part["fork_of_%d" % g["forks"]]), ""),
        ]
    if "numpy" in g:
        numpy = g["numpy"]
        rows += [
            ("numpy: `pip install --user` in a fresh session", _t(numpy["pip_install_in_a_fresh_session"]), ""),
            (
                "numpy: a session from a snapshot holding it",
                _t(numpy["session_from_snapshot"]),
                "**%sx**" % numpy["speedup"],
            ),
        ]
    return rows


EGRESS_MODES = (
    ("proxy", "through the filtering proxy"),
    ("direct_name", "direct, by name (a DNS lookup each)"),
    ("direct_address", "direct, by address"),
)


def _egress(g: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Figure 12: the proxy's share of an allowed request, next to direct ones (by name; by an address found first)."""
    rows = [("**12. Egress: GET %s, a fresh connection each**" % g["url"].split("//")[1], "", "")]
    for scheme in ("http", "https"):
        if scheme not in g:
            continue
        part = g[scheme]
        by_address, by_name = part["added"]["vs_direct_address"], part["added"]["vs_direct_name"]
        rows += [
            ("%s %s" % (scheme.upper(), label), _t(part[mode]), "p90 %.2f ms" % part[mode]["p90_ms"])
            for mode, label in EGRESS_MODES
        ]
        rows.append(
            (
                "%s: the proxy adds (medians)" % scheme.upper(),
                "**%+.2f ms** vs by address, %+.2f ms vs by name" % (by_address["ms"], by_name["ms"]),
                "%sx / %sx the direct time" % (by_address["ratio"], by_name["ratio"]),
            )
        )
    if "https_skipped" in g:
        rows.append(("HTTPS", "skipped: %s" % g["https_skipped"], ""))
    return rows


def _size(n: int) -> str:
    return "%d MB" % (n // 1_000_000) if n >= 1_000_000 else "%d KB" % (n // 1000)


if __name__ == "__main__":
    print("\n".join(table(json.loads(Path(sys.argv[1]).read_text()))))
