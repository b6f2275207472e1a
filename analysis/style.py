"""Shared look of every figure: one colour per algorithm, display names and "K"/"M" step labels."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import matplotlib
import seaborn as sns

# The registered algorithms in display order; AWAC first because every comparison in the report is against it.
# Any other algorithm is drawn too: it gets the next colours of the palette and its registry name.
# ``sacfd-prior`` is SACfD with its ``prior`` preset (BC-initialised actor), shown by the paper's own name for
# it, "SACfD-pretrain" (its challenges section); the paper's "SAC+BC" (a BC loss in SAC's actor update throughout,
# after Nair et al. 2018) is ``sac-bc``: docs/FIDELITY.md, "Which SAC baselines".
KNOWN_ALGOS: tuple[str, ...] = ("awac", "sacfd", "bear", "awr", "bc", "iql", "sacfd-prior", "sac-bc")
DISPLAY_NAMES: dict[str, str] = {"awac": "AWAC", "sacfd": "SACfD", "bear": "BEAR", "awr": "AWR", "bc": "BC",
                                 "iql": "IQL", "sacfd-prior": "SACfD-pretrain", "sac-bc": "SAC+BC"}
PALETTE_NAME = "colorblind"


def display_name(algo: str) -> str:
    """Human-readable algorithm name ("sacfd" -> "SACfD"); unknown names are returned unchanged."""
    return DISPLAY_NAMES.get(algo, algo)


def order_algos(algos: Iterable[str]) -> list[str]:
    """Known algorithms in the fixed order above, then any others alphabetically."""
    algos = set(algos)
    known = [a for a in KNOWN_ALGOS if a in algos]
    return known + sorted(algos - set(KNOWN_ALGOS))


def algo_palette(algos: Iterable[str]) -> dict[str, tuple[float, float, float]]:
    """Colour per algorithm, identical in every figure of a report.

    Known algorithms always get the same colour (their slot in ``KNOWN_ALGOS``) whichever others are
    present; unknown algorithms take the colours after those, in alphabetical order.
    """
    ordered = order_algos(algos)
    unknown = [a for a in ordered if a not in KNOWN_ALGOS]
    colours = sns.color_palette(PALETTE_NAME, len(KNOWN_ALGOS) + len(unknown))
    slot = {a: i for i, a in enumerate(KNOWN_ALGOS)}
    slot.update({a: len(KNOWN_ALGOS) + i for i, a in enumerate(unknown)})
    return {a: tuple(colours[slot[a] % len(colours)]) for a in ordered}


def format_steps(value: float) -> str:
    """Compact step count: 0 -> "0", 1500 -> "1.5K", 20000 -> "20K", 2.5e6 -> "2.5M", -5000 -> "-5K"."""
    if value != value:  # NaN
        return "n/a"
    if value in (float("inf"), float("-inf")):
        return "never" if value > 0 else "-inf"
    sign = "-" if value < 0 else ""
    v = abs(float(value))
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if v >= div:
            text = f"{v / div:.1f}".rstrip("0").rstrip(".")
            return f"{sign}{text}{suffix}"
    return f"{sign}{v:.0f}" if v == int(v) else f"{sign}{v:.1f}"


def set_theme() -> None:
    """Seaborn theme used by all figures (white grid, paper context, readable fonts)."""
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)


@contextlib.contextmanager
def theme() -> Iterator[None]:
    """Seaborn theme for the figures of this package; global rcParams are restored on exit."""
    with matplotlib.rc_context():
        set_theme()
        yield
