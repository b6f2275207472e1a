"""D4RL reference scores for normalisation: 100 * (return - random) / (expert - random).

Facts carried over from D4RL (Fu et al. 2020, arXiv 2004.07219; the table ``REF_MIN_SCORE`` /
``REF_MAX_SCORE`` in ``d4rl/infos.py``, Farama-Foundation/D4RL). They were measured on the v2 MuJoCo
and v0/v1 Adroit environments; gymnasium's v5 / AdroitHand*-v1 differ slightly, so normalised scores
here are comparable in scale, not digit for digit, with published D4RL numbers.
"""

from __future__ import annotations

import re

# environment family -> (random policy return, expert policy return). d4rl/infos.py gives every dataset of a
# family the same pair: its v1/v2 locomotion and v1 Adroit entries copy the v0 ones (the loops at its end),
# so these serve all D4RL names that benchmarks/tasks/catalog.py resolves.
D4RL_REF_SCORES: dict[str, tuple[float, float]] = {
    "halfcheetah": (-280.178953, 12135.0),
    "hopper": (-20.272305, 3234.3),
    "walker2d": (1.629008, 4592.3),
    "ant": (-325.6, 3879.7),
    "pen": (96.262799, 3076.8331),
    "door": (-56.512833, 2880.5693),
    "hammer": (-274.856578, 12794.134825),
    "relocate": (-6.425911, 4233.877797),
}


def normalize(ret: float, family: str | None) -> float:
    """D4RL-normalised score, or NaN when the family has no reference."""
    if family not in D4RL_REF_SCORES:
        return float("nan")
    lo, hi = D4RL_REF_SCORES[family]
    return 100.0 * (ret - lo) / (hi - lo)


def family_of(name: str) -> str | None:
    """Guess the D4RL family from a dataset or env name ("halfcheetah-medium-v2", "HalfCheetah-v5",
    "hopper_medium-v2.hdf5", "AdroitHandPen-v1", "mujoco/hopper/medium-v0").

    Whole words only (split at ``-``, ``_``, ``/``, ``.``, ...), so "Pendulum-v1" is not pen and
    "antmaze-umaze-v2" is not ant.
    """
    for word in re.split(r"[^a-z0-9]+", name.lower()):
        fam = word.removeprefix("adroithand").removesuffix("dense")
        if fam in D4RL_REF_SCORES:
            return fam
    return None
