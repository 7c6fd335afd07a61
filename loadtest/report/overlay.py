"""One PNG with a baseline run and a new run on one time axis (seconds since each run's start),
for `cyrus-loadtest compare`: per panel the baseline grey, the new run in colour.

Kept apart from plots.py/html.py (the run report) on purpose: it only reads two stores.
File I/O only (matplotlib, Agg backend): no Locust, no gevent.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from loadtest.core.series import SeriesStore  # noqa: E402

# (signal, how samples of the same second combine, y label, log scale)
OVERLAY_PANELS = (
    ("greeting_latency_ms", "max", "probe greeting (ms)", True),
    ("step_p95_ms", "max", "worst step p95 (ms)", True),
    ("step_rate_per_s", "sum", "requests/s (all steps)", False),
    ("ready_workers", "sum", "ready imapd workers", False),
    ("heartbeat_age_s", "max", "heartbeat age (s)", False),
)


def per_second(store: SeriesStore, signal: str, how: str, start: float) -> tuple[list[float], list[float]]:
    """(seconds since ``start``, value) with samples of the same second combined; a null
    latency (no answer) is drawn as nothing, not as zero."""
    buckets: dict[int, list[float]] = defaultdict(list)
    for s in store.samples(signal):
        if s.value is not None and not math.isinf(s.value):
            buckets[int(s.t - start)].append(s.value)
    xs = sorted(buckets)
    combine = sum if how == "sum" else max
    return [float(x) for x in xs], [combine(buckets[x]) for x in xs]


def run_start(store: SeriesStore, start: float | None) -> float:
    if start is not None:
        return start
    times = [s.t for s in store.samples()]
    return min(times) if times else 0.0


def plot_overlay(base: SeriesStore, new: SeriesStore, path: str | Path, *,
                 base_name: str, new_name: str, base_start: float | None = None,
                 new_start: float | None = None) -> Path | None:
    """Write the overlay PNG; None when neither run has any of the panels' signals."""
    b0, n0 = run_start(base, base_start), run_start(new, new_start)
    panels = [(p, per_second(base, p[0], p[1], b0), per_second(new, p[0], p[1], n0))
              for p in OVERLAY_PANELS]
    panels = [p for p in panels if p[1][0] or p[2][0]]
    if not panels:
        return None
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.2 * len(panels)), sharex=True,
                             squeeze=False)
    for ax, ((signal, _how, ylabel, log), (bx, by), (nx, ny)) in zip(axes[:, 0], panels,
                                                                     strict=True):
        ax.plot(bx, by, color="0.6", lw=1.2, label=f"baseline: {base_name}")
        ax.plot(nx, ny, color="tab:red", lw=1.2, label=f"new: {new_name}")
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_title(signal, fontsize=9, loc="left")
        if log and any(v > 0 for v in by + ny):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="upper right")
    axes[-1, 0].set_xlabel("seconds since each run's start")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
