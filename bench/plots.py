"""PNG plots of one run's figures (matplotlib, Agg: no display needed). One file per figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.ticker import NullFormatter

SANDKASTEN = "#2a7ab0"
BASELINE = "#b0b0b0"
COLD = "#8fbcd8"


def _bars(ax: Axes, rows: list[tuple[str, dict[str, Any], str]], title: str) -> None:
    """Horizontal bars of medians (log scale), p99 as a tick, the median written at the bar's end."""
    labels = [label for label, _, _ in rows]
    medians = [figures["median_ms"] for _, figures, _ in rows]
    p99s = [figures["p99_ms"] for _, figures, _ in rows]
    positions = list(range(len(rows)))[::-1]
    ax.barh(positions, medians, color=[color for _, _, color in rows])
    ax.scatter(p99s, positions, marker="|", s=250, color="black", zorder=3, label="p99")
    for y, median, p99 in zip(positions, medians, p99s, strict=True):
        ax.text(max(median, p99) * 1.15, y, _ms(median), va="center", fontsize=8)
    ax.set_yticks(positions, labels, fontsize=8)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(min(medians) / 2, max(p99s) * 6)
    ax.set_xlabel("ms (median bar, p99 tick; log scale)", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper right")


def _ms(value: float) -> str:
    return "%.0f ms" % value if value >= 10 else "%.1f ms" % value


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _bar_plot(path: Path, title: str, rows: list[tuple[str, dict[str, Any], str]], height: float = 2.8) -> Path:
    """One figure of horizontal bars (``_bars``), saved to ``path``."""
    fig, ax = plt.subplots(figsize=(8, height))
    _bars(ax, rows, title)
    return _save(fig, path)


def kernel_start(figures: dict[str, Any], path: Path) -> Path:
    rows = [
        ("Sandkasten, warm pool", figures["sandkasten_warm"], SANDKASTEN),
        ("Sandkasten, cold", figures["sandkasten_cold"], COLD),
        ("local ipykernel (no sandbox)", figures["local_ipykernel"], BASELINE),
        ("gateway-provisioners DockerProvisioner", figures["gateway_docker_provisioner"], BASELINE),
    ]
    return _bar_plot(path, "1. Kernel start to kernel_info reply", rows)


def first_exec(figures: dict[str, Any], path: Path) -> Path:
    rows = [
        ("Sandkasten REST, warm pool", figures["sandkasten_warm"], SANDKASTEN),
        ("Sandkasten REST, cold", figures["sandkasten_cold"], COLD),
        ("llm-sandbox (Docker)", figures["llm_sandbox"], BASELINE),
        ("docker run + docker exec", figures["docker_run_exec"], BASELINE),
    ]
    return _bar_plot(path, "2. Session create to first exec result", rows)


def exec_round_trip(figures: dict[str, Any], path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(11, 3))
    for ax, (key, title) in zip(axes, [("true", "`true`"), ("1MB_output", "1 MB of output")], strict=True):
        part = figures[key]
        sync = (
            [("Sandkasten sync SDK", part["sandkasten_sdk_sync"], SANDKASTEN)] if "sandkasten_sdk_sync" in part else []
        )
        rows = [
            ("Sandkasten SDK (REST)", part["sandkasten_sdk"], SANDKASTEN),
            *sync,
            ("Sandkasten REST, stdlib client", part["sandkasten_http_stdlib"], SANDKASTEN),
            ("runner socket (no HTTP)", part["runner_socket"], COLD),
            ("docker exec", part["docker_exec"], BASELINE),
            ("llm-sandbox", part["llm_sandbox"], BASELINE),
        ]
        _bars(ax, rows, "3. Exec round trip, %s" % title)
    return _save(fig, path)


def kernel_execute(figures: dict[str, Any], path: Path) -> Path:
    rows = [
        ("sandboxed kernel (ipc)", figures["sandkasten_ipc"], SANDKASTEN),
        ("local ipykernel", figures["local_ipykernel"], BASELINE),
    ]
    return _bar_plot(path, "4. Kernel execute round trip (`pass`)", rows, height=1.9)


def density(figures: dict[str, Any], path: Path) -> Path:
    steps = figures["sessions"]["steps"]
    counts = [step["sessions"] for step in steps]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.plot(counts, [s["median_ms"] for s in steps], "o-", color=SANDKASTEN, label="exec `true` median")
    ax.plot(counts, [s["p99_ms"] for s in steps], "s-", color="black", label="exec `true` p99")
    ax.axhline(2 * steps[0]["p99_ms"], color="red", linestyle="--", linewidth=1, label="2x p99 at 1 session")
    ax.set_xticks(counts)
    ax.set_xlabel("sessions held")
    ax.set_ylabel("ms")
    ax.set_ylim(bottom=0)
    idle = figures["idle_memory"]
    ax.set_title(
        "5. Density: exec latency vs sessions held (idle warm sandbox: %.1f MB)" % idle["median_mb"], fontsize=10
    )
    ax.legend(fontsize=8)
    return _save(fig, path)


def concurrency(figures: dict[str, Any], path: Path) -> Path:
    levels = [level for level in figures["levels"] if level["cycle"]]
    agents = [level["agents"] for level in levels]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.2))
    left.plot(agents, [level["cycles_per_s"] for level in levels], "o-", color=SANDKASTEN)
    for level in levels:
        left.annotate(
            "%d errors" % level["errors"],
            (level["agents"], level["cycles_per_s"]),
            xytext=(4, -12),
            textcoords="offset points",
            fontsize=7,
        )
    left.set_xticks(agents)
    left.set_xlabel("concurrent agents")
    left.set_ylabel("cycles / s")
    left.set_ylim(bottom=0)
    left.set_title("6. Throughput: create, write, exec, read, destroy", fontsize=10)
    right.plot(agents, [level["cycle"]["median_ms"] / 1000 for level in levels], "o-", color=SANDKASTEN, label="p50")
    right.plot(agents, [level["cycle"]["p99_ms"] / 1000 for level in levels], "s-", color="black", label="p99")
    right.set_xticks(agents)
    right.set_xlabel("concurrent agents")
    right.set_ylabel("cycle time, s")
    right.set_ylim(bottom=0)
    right.set_title("6. Cycle time per agent", fontsize=10)
    right.legend(fontsize=8)
    return _save(fig, path)


def file_transfer(figures: dict[str, Any], path: Path) -> Path:
    sizes = figures["sizes"]
    series = [
        ("sandkasten_write", "Sandkasten write (PUT)", SANDKASTEN),
        ("sandkasten_read", "Sandkasten read (GET)", COLD),
        ("docker_cp_in", "docker cp in", BASELINE),
        ("docker_cp_out", "docker cp out", "#707070"),
    ]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    width = 0.8 / len(series)
    for i, (key, label, color) in enumerate(series):
        xs = [j + i * width for j in range(len(sizes))]
        values = [size[key]["mb_per_s"] for size in sizes]
        ax.bar(xs, values, width, label=label, color=color)
        for x, value in zip(xs, values, strict=True):
            ax.text(x, value * 1.1, "%.0f" % value if value >= 10 else "%.2g" % value, ha="center", fontsize=7)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(sizes))], [_size(s["bytes"]) for s in sizes])
    ax.set_yscale("log")
    ax.set_ylabel("MB/s (median; log scale)")
    ax.set_title("7. File transfer through the API", fontsize=10)
    ax.legend(fontsize=7)
    return _save(fig, path)


def sessions(figures: dict[str, Any], path: Path) -> Path:
    rows = [
        ("create, warm pool", figures["create_warm"], SANDKASTEN),
        ("create, cold", figures["create_cold"], COLD),
        ("create, named workspace (cold)", figures["create_named_workspace"], COLD),
        ("destroy", figures["destroy"], SANDKASTEN),
        ("docker run of true", figures["docker_run_true"], BASELINE),
    ]
    return _bar_plot(path, "8. Session create and destroy (SDK)", rows, height=3)


def image_build(figures: dict[str, Any], path: Path) -> Path:
    rows = [("every image current", figures["current"], SANDKASTEN)]
    if "from_nothing" in figures:
        ms = figures["from_nothing"]["seconds"] * 1000
        rows.append(("from nothing (debootstrap included)", {"median_ms": ms, "p99_ms": ms}, COLD))
    return _bar_plot(path, "9. sandkasten images build", rows, height=1.9)


def custom_image_build(figures: dict[str, Any], path: Path) -> Path:
    rows = []
    for kind, label in (
        ("dockerfile", "from a Dockerfile (apt-get, python3 installed)"),
        ("from", "--from an image with python3"),
    ):
        first_ms = figures[kind]["first_s"] * 1000
        rows.append(("%s, first" % label, {"median_ms": first_ms, "p99_ms": first_ms}, COLD))
        rows.append(("%s, repeated" % label, figures[kind]["repeated"], SANDKASTEN))
    return _bar_plot(path, "13. sandkasten images add: first and repeated build", rows, height=2.6)


def client_kernels(figures: dict[str, Any], path: Path) -> Path:
    rows = [
        ("agent process, warm", figures["agent_warm"], SANDKASTEN),
        ("agent process, no server (cold)", figures["agent_cold_no_server"], COLD),
        ("agent process, local ipykernel", figures["agent_local_ipykernel"], BASELINE),
        ("--gateway-url server, warm", figures["gateway_warm"], SANDKASTEN),
        ("--gateway-url server, empty pool", figures["gateway_cold"], COLD),
        ("plain Jupyter Server, local ipykernel", figures["jupyter_server_local_ipykernel"], BASELINE),
    ]
    return _bar_plot(path, "10. Kernel start for clients outside the server", rows, height=3.2)


def bursts(figures: dict[str, Any], path: Path) -> Path:
    series = [
        ("sandkasten_first", "Sandkasten, pool at its floor", COLD),
        ("sandkasten_repeat", "Sandkasten, pool after one burst", SANDKASTEN),
        ("llm_sandbox", "llm-sandbox", BASELINE),
        ("docker_run_exec", "docker run + exec", "#707070"),
    ]
    sizes = figures["sizes"]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    width = 0.8 / len(series)
    for i, (key, label, color) in enumerate(series):
        xs = [j + i * width for j in range(len(sizes))]
        values = [figures[str(clients)][key]["seconds"] for clients in sizes]
        ax.bar(xs, values, width, label=label, color=color)
        for x, value in zip(xs, values, strict=True):
            ax.text(x, value * 1.05, "%.2g s" % value, ha="center", fontsize=7)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(sizes))], ["%d clients" % n for n in sizes])
    ax.set_ylabel("s until every client has its result")
    ax.set_title("11. Burst: N creates -> first exec at once", fontsize=10)
    ax.legend(fontsize=7)
    return _save(fig, path)


def egress(figures: dict[str, Any], path: Path) -> Path:
    schemes = [scheme for scheme in ("http", "https") if scheme in figures]
    fig, axes = plt.subplots(1, len(schemes), figsize=(5.5 * len(schemes), 2.4), squeeze=False)
    for ax, scheme in zip(axes[0], schemes, strict=True):
        part = figures[scheme]
        rows = [
            ("through the filtering proxy", part["proxy"], SANDKASTEN),
            ("direct, by name (DNS each)", part["direct_name"], BASELINE),
            ("direct, by address", part["direct_address"], BASELINE),
        ]
        added = part["added"]["vs_direct_address"]
        _bars(ax, rows, "12. Egress, %s GET: proxy adds %+.2f ms (%sx)" % (scheme.upper(), added["ms"], added["ratio"]))
    return _save(fig, path)


def e2b(figures: dict[str, Any], path: Path) -> Path:
    five = figures["five_commands"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 2.6))
    _bars(
        left,
        [
            ("E2B SDK: create -> first command", figures["e2b_create_to_first_command"], BASELINE),
            ("Sandkasten SDK: create -> first exec", figures["sdk_create_to_first_exec"], SANDKASTEN),
        ],
        "15. Create to first command (warm)",
    )
    _bars(
        right,
        [
            ("one after another (shell)", five["sequential"], BASELINE),
            ("at once, beside the shell", five["concurrent"], SANDKASTEN),
            ("at once, E2B commands", five["e2b_concurrent"], SANDKASTEN),
        ],
        "15. Five `sleep 0.5` in one sandbox",
    )
    return _save(fig, path)


def _size(n: int) -> str:
    return "%d MB" % (n // 1_000_000) if n >= 1_000_000 else "%d KB" % (n // 1000)


PLOTS = {
    "kernel_start": kernel_start,
    "first_exec": first_exec,
    "exec_round_trip": exec_round_trip,
    "kernel_execute": kernel_execute,
    "density": density,
    "concurrency": concurrency,
    "file_transfer": file_transfer,
    "sessions": sessions,
    "image_build": image_build,
    "custom_image_build": custom_image_build,
    "client_kernels": client_kernels,
    "bursts": bursts,
    "egress": egress,
    "e2b": e2b,
}


def plot_all(figures: dict[str, Any], prefix: Path) -> list[Path]:
    """One PNG per figure present, named ``<prefix>-<figure>.png``."""
    return [
        plot(figures[name], prefix.with_name("%s-%s.png" % (prefix.name, name.replace("_", "-"))))
        for name, plot in PLOTS.items()
        if name in figures
    ]


if __name__ == "__main__":
    # Re-draw the plots of a finished run: python -m bench.plots bench/results/<date>.json
    import json
    import sys

    result_file = Path(sys.argv[1])
    for picture in plot_all(json.loads(result_file.read_text()), result_file.with_suffix("")):
        print("wrote %s" % picture)
