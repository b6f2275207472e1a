"""How the suite makes a task's prior data, as data: the recipe a task declares (``Recipe``) and where the
suite's own data lives. ``benchmarks/generation/priordata.py`` follows a recipe; this module only describes it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from benchmarks.data.dataset import DATA_DIR

GENERATED_DIR = os.path.join(DATA_DIR, "generated")   # not committed: regenerated on first use
DAPG_DIR = os.path.join(DATA_DIR, "dapg-policies")
LOADED_FRACTION = 0.9  # rlkit DictToMDPPathLoader train_split: the first int(0.9 n) paths enter the buffer


@dataclass(frozen=True)
class Recipe:
    """How one task's prior data is made: ``demos`` then rollouts of a policy cloned on them."""

    # "human:<file in datasets/>", "dapg:<npz in dapg-policies/>" (mean action), "dapg-sampled:<npz>" (the
    # DAPG policy's own Gaussian: mean + exp(log_std) * N(0, 1)) or "sac:<env id or file in experts/>" (the
    # suite's SAC expert, benchmarks/generation/expert.py, mean action); every generated demonstration gets extra
    # Gaussian action noise ``demo_noise``, clipped to [-1, 1]
    demos: str
    n_demos: int            # demonstrations made / in the file (all of them train the BC policy)
    n_bc_rollouts: int      # rollouts of the BC policy (as in the reference file, before the 0.9 split)
    demo_noise: float = 0.0
    # extra Gaussian action noise on the BC rollouts (on top of the BC policy's own sampled actions)
    bc_noise: float = 0.0
    bc_steps: int = 10_000
    seed: int = 0
    # episodes of a uniform random policy appended after the BC rollouts (all loaded; source 2). Not part of
    # the AWAC paper's recipe: the regression check's data uses them so that the data holds bad actions next
    # to good ones (weighting must matter) and many terminal states (Hopper falls within ~20-40 random steps).
    n_random: int = 0
    # the data-quality ladder (docs/TASKS.md "Data quality", declared before generating): values of
    # ``ladder_field`` tried in order by ``awac-bench data quality TASK --ladder`` until BC (2) lands in the
    # task's band; the recipe's own value of that field is the rung chosen (MANIFEST.json records the walk)
    ladder: tuple[float, ...] = ()
    ladder_field: str = "demo_noise"

    @property
    def demos_loaded(self) -> int:
        return int(LOADED_FRACTION * self.n_demos)

    @property
    def bc_loaded(self) -> int:
        return int(LOADED_FRACTION * self.n_bc_rollouts)
