"""PNG plots of a run on one shared time axis (seconds since the run started): every panel has
the same x range and margins, so they line up when stacked in the report. Stall and heartbeat
gap intervals are shaded, phases drawn as bands, fault events as dashed lines.

File I/O only (matplotlib with the Agg backend, no display needed): no Locust, no gevent.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display, same output everywhere
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from loadtest.core.series import Event, Sample, SeriesStore  # noqa: E402
from loadtest.core.signals import drawn_on  # noqa: E402
from loadtest.core.signals import label as signal_label  # noqa: E402

# Labels that tell lines of one signal apart (others, like "why" or "dir", do not).
GROUP_LABELS = ("step", "service", "family")
PHASE_COLOURS = ("#f2f2f2", "#e3ecf7")


@dataclass(frozen=True)
class Panel:
    name: str  # file name stem: plot-<name>.png; signals name it as their panel (core.signals)
    title: str
    ylabel: str
    log: bool = False
    dashed: tuple[str, ...] = ()  # signals drawn dashed (e.g. p50 beside p95)
    # signal -> (labels that still split lines, "sum" or "max"): samples of the same second
    # from different instances (or steps) combined into one line, to keep the plot readable.
    combine: tuple[tuple[str, tuple[str, ...], str], ...] = ()
    right: tuple[str, ...] = ()  # signals on an axis of their own (right), e.g. host-wide forks
    right_label: str = ""
    # Per-second counts: a second without a sample had none (drawn as 0, not as a ramp across it).
    zero_filled: tuple[str, ...] = ()

    @property
    def signals(self) -> tuple[str, ...]:
        """The signals on the left axis: those declared on this panel, in declaration order."""
        return tuple(s for s in drawn_on(panel=self.name) if s not in self.right)


PANELS = (
    Panel("request-rate", "Requests per second by step; failures dashed (lines of equal rate "
          "are drawn thick to thin, so none hides another)", "requests/s",
          dashed=("step_failures_per_s",),
          combine=(("step_rate_per_s", ("step",), "sum"), ("step_failures_per_s", (), "sum")),
          zero_filled=("step_rate_per_s", "step_failures_per_s")),
    Panel("step-latency", "Per-step latency, worst instance: p95 solid, p50 dashed (x: "
          "percentile lost to failures)", "ms", log=True,
          dashed=("step_p50_ms",),
          combine=(("step_p95_ms", ("step",), "max"), ("step_p50_ms", ("step",), "max"))),
    Panel("greeting-vs-held", "New connection (probe) vs held session latency "
          "(x: no answer)", "ms", log=True),
    Panel("heartbeat", "Master heartbeat: age of stats/master.txt", "s"),
    Panel("spawns", "Spawns per second: Cyrus's own counters (left); every fork on the host "
          "(right)", "spawns/s", right=("host_forks_per_s",), right_label="host forks/s",
          dashed=("host_forks_per_s",)),
    Panel("workers", "Ready workers and active children (master)", "processes"),
    Panel("processes", "Server processes", "processes"),
    Panel("backlog", "Listen backlog and overflows (host-wide, since start)", "connections"),
    Panel("canary", "Filesystem canary: create+fsync+unlink", "ms", log=True),
    Panel("load", "Machine load", "load / processes"),
    Panel("cpu", "CPU of Cyrus and of the generator", "%"),
)
TITLE_SIZE, LABEL_SIZE, TICK_SIZE, LEGEND_SIZE = 13, 11, 10, 10


def line_label(signal: str, labels: dict[str, Any], instance: str | None) -> str:
    """A legend entry: the signal's words, then what tells its lines apart."""
    text = signal_label(signal)
    if "{step}" in text:
        text = text.format(step=labels.get("step", "all steps"))
    extra = "/".join(str(labels[k]) for k in ("service", "family") if k in labels)
    if extra:
        text += f" {extra}"
    if instance:
        text += f" [{instance}]"
    return text


def time_range(store: SeriesStore, start: float | None = None,
               end: float | None = None) -> tuple[float, float]:
    """The run's start and end: from run.json when known, else from the data."""
    if start is None or end is None:
        events = store.events()
        times = [s.t for s in store.samples()] + [e.t for e in events] + [
            e.end for e in events if e.end is not None]
        start = start if start is not None else min(times, default=0.0)
        end = end if end is not None else max(times, default=start + 1.0)
    return start, max(end, start + 1.0)


def _groups(samples: list[Sample], panel: Panel, signal: str) -> dict[str, list[Sample]]:
    for name, labels, how in panel.combine:
        if name == signal:
            return _combined(samples, labels, how)
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        groups[line_label(s.signal, {k: s.labels[k] for k in GROUP_LABELS if k in s.labels},
                          s.instance)].append(s)
    return dict(sorted(groups.items()))


def _combined(samples: list[Sample], labels: tuple[str, ...],
              how: str) -> dict[str, list[Sample]]:
    """One line per value of `labels`, samples at the same time summed or maxed; a null in a
    max stays a null (a percentile lost to failures is the worst case)."""
    buckets: dict[str, dict[float, list[float | None]]] = defaultdict(lambda: defaultdict(list))
    for s in samples:
        key = line_label(s.signal, {k: s.labels[k] for k in labels if k in s.labels}, None)
        buckets[key][s.t].append(s.value)
    groups: dict[str, list[Sample]] = {}
    for key, by_time in sorted(buckets.items()):
        out = []
        for t, values in sorted(by_time.items()):
            known = [v for v in values if v is not None]
            if how == "sum":
                value = sum(known) if known else None
            else:
                value = None if len(known) < len(values) else max(known)
            out.append(Sample(t, key, value))
        groups[key] = out
    return groups


def _mark_events(ax: Any, store: SeriesStore, t0: float, t1: float) -> list[Any]:
    """Phases as bands with names, stalls and heartbeat gaps shaded, faults as dashed lines."""
    handles = []
    phases = sorted(store.events("phase"), key=lambda e: e.t)
    for i, ev in enumerate(phases):
        end = ev.end if ev.end is not None else t1
        ax.axvspan(ev.t - t0, end - t0, color=PHASE_COLOURS[i % 2], zorder=0, lw=0)
        ax.text((ev.t - t0 + end - t0) / 2, 1.0, str(ev.detail.get("name", "phase")),
                transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=TICK_SIZE,
                color="#555555", clip_on=False)
    shading = (("stall", "#d62728", 0.25, "master stall"),
               ("heartbeat_gap", "#ff7f0e", 0.18, "heartbeat gap"),
               ("collector_gap", "#7f7f7f", 0.15, "collector gap"))
    for kind, colour, alpha, label in shading:
        events: list[Event] = store.events(kind)
        for ev in events:
            end = ev.end if ev.end is not None else t1
            ax.axvspan(ev.t - t0, max(end, ev.t + 0.05) - t0, color=colour, alpha=alpha,
                       zorder=1, lw=0)
        if events:
            handles.append(Patch(color=colour, alpha=alpha + 0.2, label=label))
    faults = store.events("fault")
    for ev in faults:
        ax.axvline(ev.t - t0, color="#9467bd", ls="--", lw=1, zorder=3)
        if ev.end is not None and ev.end > ev.t:
            ax.axvline(ev.end - t0, color="#9467bd", ls=":", lw=1, zorder=3)
    if faults:
        handles.append(Patch(color="#9467bd", label="fault (start -- / end ..)"))
    return handles


def zero_filled(points: list[tuple[float, float]], step: float = 1.0) -> list[tuple[float, float]]:
    """Per-second counts with the seconds that had none put back as 0 (a line straight across
    them would draw a ramp that never happened)."""
    out: list[tuple[float, float]] = []
    for x, y in points:
        if out and x - out[-1][0] > 1.5 * step:
            out.append((out[-1][0] + step, 0.0))
            if x - step > out[-1][0]:
                out.append((x - step, 0.0))
        out.append((x, y))
    return out


def _draw(ax: Any, panel: Panel, signals: tuple[str, ...], store: SeriesStore,
          t0: float, t1: float) -> tuple[bool, list[Any]]:
    """Draw ``signals`` on ``ax``: (anything drawn, samples drawn)."""
    has_data = False
    drawn: list[Sample] = []
    lines: list[tuple[str, str, list[Sample]]] = []
    for signal in signals:
        for label, samples in _groups(store.samples(signal), panel, signal).items():
            lines.append((signal, label, samples))
    count = len(lines)
    for i, (signal, label, samples) in enumerate(lines):
        values = [(s.t - t0, s.value) for s in samples if s.value is not None and s.t <= t1]
        if signal in panel.zero_filled:
            values = zero_filled(values)
        gaps = [s.t - t0 for s in samples if s.value is None and s.t <= t1]
        drawn.extend(samples)
        if values:
            xs, ys = zip(*values, strict=True)
            # Thick to thin: a line with the same values as an earlier one stays visible.
            width = 1.2 + 2.4 * (count - 1 - i) / max(1, count - 1)
            (line,) = ax.plot(xs, ys, lw=width, label=label, zorder=4 + i, alpha=0.9,
                              ls="--" if signal in panel.dashed else "-",
                              marker="." if len(xs) < 40 else None, markersize=4)
            colour = line.get_color()
            has_data = True
        else:
            colour = "#d62728"
        if gaps:
            ax.plot(gaps, [0.96] * len(gaps), "x", color=colour, markersize=6,
                    transform=ax.get_xaxis_transform(), zorder=5,
                    label=None if values else f"{label} (no answer)")
            has_data = True
    return has_data, drawn


def plot_panel(panel: Panel, store: SeriesStore, t0: float, t1: float,
               path: Path) -> bool:
    """Draw one panel into `path`; False when none of its signals has data ("no data")."""
    fig, ax = plt.subplots(figsize=(12, 3.4), dpi=100)
    fig.subplots_adjust(left=0.07, right=0.66 if panel.right else 0.72, top=0.83, bottom=0.17)
    handles = _mark_events(ax, store, t0, t1)
    has_data, drawn = _draw(ax, panel, panel.signals, store, t0, t1)
    right_ax = None
    if panel.right and any(store.samples(s) for s in panel.right):
        right_ax = ax.twinx()
        right_ax.set_prop_cycle(color=["#7f7f7f"])
        right_data, _ = _draw(right_ax, panel, panel.right, store, t0, t1)
        has_data = has_data or right_data
        right_ax.set_ylabel(panel.right_label, fontsize=LABEL_SIZE)
        right_ax.tick_params(labelsize=TICK_SIZE)
        right_ax.set_ylim(bottom=0)
    ax.set_xlim(0, t1 - t0)
    ax.set_title(panel.title, fontsize=TITLE_SIZE, loc="left", pad=16)
    ax.set_xlabel("seconds since the load started", fontsize=LABEL_SIZE)
    ax.set_ylabel(panel.ylabel, fontsize=LABEL_SIZE)
    ax.tick_params(labelsize=TICK_SIZE)
    ax.grid(True, alpha=0.3)
    if not has_data:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center",
                fontsize=14, color="#888888")
        ax.set_yticks([])
    else:
        if panel.log and any(s.value and s.value > 0 for s in drawn):
            ax.set_yscale("log")
        lines, labels = ax.get_legend_handles_labels()
        if right_ax is not None:
            more, more_labels = right_ax.get_legend_handles_labels()
            lines, labels = lines + more, labels + [f"{x} (right)" for x in more_labels]
        ax.legend(lines + handles, labels + [h.get_label() for h in handles],
                  fontsize=LEGEND_SIZE, loc="upper left",
                  bbox_to_anchor=(1.1 if right_ax is not None else 1.01, 1.0), frameon=False)
    fig.savefig(path, format="png")
    plt.close(fig)
    return has_data


def plot_all(store: SeriesStore, folder: str | Path, t0: float,
             t1: float) -> list[tuple[Panel, str, bool]]:
    """Every panel as folder/plot-NAME.png on the axis t0..t1 (`time_range`): (panel, file
    name, has data)."""
    folder = Path(folder)
    out = []
    for panel in PANELS:
        name = f"plot-{panel.name}.png"
        out.append((panel, name, plot_panel(panel, store, t0, t1, folder / name)))
    return out
