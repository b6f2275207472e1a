"""The contract every algorithm implements, and the strict config base class.

An algorithm is a bag of networks plus one gradient step. The harness (``benchmarks.run.harness``)
owns the protocol: when the phase switches, how data is collected and how the policy is evaluated.
An algorithm only *declares* what it needs from that protocol (see ``Algorithm`` class attributes).
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np
import pydantic
import torch


class UserError(Exception):
    """Bad input from the user (unknown name, bad file, bad config). The CLI prints it and exits 2."""


class Batch(NamedTuple):
    """A minibatch of transitions, all float32 tensors on the algorithm's device.

    ``done`` is 1.0 where the transition ended in a true terminal state (never at a time limit).
    ``extras``: named per-row columns an algorithm declares in ``batch_extras`` (e.g. AWR's ``ret`` and ``adv``,
    which it writes into the buffer itself), each a [B] tensor.
    ``demo``: for an algorithm that declares ``demo_batch_size``, a second minibatch of that many rows drawn from
    the prior data's demonstration rows only (SAC+BC's behaviour-cloning batch); else None.
    """

    obs: torch.Tensor
    act: torch.Tensor
    rew: torch.Tensor
    next_obs: torch.Tensor
    done: torch.Tensor
    extras: dict[str, torch.Tensor] = {}
    demo: Batch | None = None


class Rhythm(NamedTuple):
    """An algorithm's online rhythm: ``collect`` environment steps with its sampled policy, then ``updates``
    gradient steps (``prepare_updates`` before them), over and over. The harness scales ``updates`` by the run's
    update-to-data ratio (``--utd``)."""

    collect: int = 1
    updates: int = 1


def episode_ends(obs, next_obs, done, timeout):
    """Which rows of a table of transitions in time order end an episode: a true terminal (``done``), a time
    limit (``timeout``), a break in continuity (``next_obs[t] != obs[t + 1]``: the flags missed an end) and the
    last row (an episode still being collected, or cut by the end of the data). numpy arrays or torch tensors."""
    ends = (done != 0) | (timeout != 0)
    if len(ends) > 1:
        ends[:-1] |= (next_obs[:-1] != obs[1:]).any(-1)
    if len(ends):
        ends[-1] = True
    return ends


def returns_to_go(rew: np.ndarray, ends: np.ndarray, gamma: float) -> np.ndarray:
    """Discounted Monte-Carlo return of every row from it to its episode's end (rows in time order; ``ends`` marks
    an episode's last row, ``episode_ends``; nothing is bootstrapped past it). float64."""
    out = np.zeros(len(rew), dtype=np.float64)
    acc = 0.0
    for i in range(len(rew) - 1, -1, -1):
        if ends[i]:
            acc = 0.0
        acc = float(rew[i]) + gamma * acc
        out[i] = acc
    return out


def ends_at_goal(cfg) -> bool:
    """Whether a run with this algorithm config treats the goal as a terminal state (its ``end_at_goal``; default
    False): read by the harness before the algorithm exists, and by ``Algorithm.ends_at_goal``."""
    return bool(getattr(cfg, "end_at_goal", False))


def random_steps(cfg) -> int:
    """Online environment steps a run with this algorithm config takes with uniformly random actions, running no
    update, before its policy acts (its ``random_steps``; default 0): RLPD's ``--start_training``."""
    n = int(getattr(cfg, "random_steps", 0))
    if n < 0:
        raise UserError(f"config key 'random_steps': {n} is negative (a number of environment steps, 0 for none)")
    return n


def scalars(metrics: dict[str, torch.Tensor]) -> dict[str, float]:
    """An update's metrics, scalar tensors by name, as floats read in one transfer (one ``stack``, one ``tolist``)."""
    return dict(zip(metrics, torch.stack(list(metrics.values())).tolist(), strict=True))


def _from_text(text: str, annotation: Any) -> Any:
    """A config value given as text (``--set KEY=VALUE``) in the form pydantic validates for the field's type:
    "none", "null" or "" for an optional field's None, a list of items for a tuple ("256,256", "(256, 256)")."""
    args = typing.get_args(annotation)
    if type(None) in args:
        if text.strip().lower() in ("none", "null", ""):
            return None
        annotation = next(a for a in args if a is not type(None))
    if typing.get_origin(annotation) is tuple:
        return [item.strip() for item in text.strip().strip("()[]").split(",") if item.strip()]
    return text


@functools.cache
def _validator(cls: type) -> pydantic.TypeAdapter:
    return pydantic.TypeAdapter(cls)


@dataclass
class Config:
    """Base for every algorithm's config. Subclasses are dataclasses whose field comments cite sources.

    ``from_dict`` is strict: an unknown key is a ``UserError`` naming it and the valid keys, and every value is
    validated against its field's type by pydantic (text from the command line is read as that type).
    """

    @classmethod
    def from_dict(cls, overrides: dict[str, Any] | None = None) -> Config:
        overrides = dict(overrides or {})
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - set(fields))
        if unknown:
            raise UserError(
                f"unknown config key(s) for {cls.__name__}: {', '.join(unknown)} "
                f"(valid: {', '.join(sorted(fields))})"
            )
        hints = typing.get_type_hints(cls)
        values = {k: _from_text(v, hints[k]) if isinstance(v, str) else v for k, v in overrides.items()}
        try:  # typed by the fields' annotations (pydantic's lax mode: "256" -> 256, "true" -> True, 2 -> 2.0)
            return _validator(cls).validate_python(values)
        except pydantic.ValidationError as e:
            err = e.errors()[0]
            key = str(err["loc"][0]) if err["loc"] else "?"
            ann = hints.get(key)
            raise UserError(f"config key '{key}': cannot read {overrides.get(key, err['input'])!r} as "
                            f"{ann.__name__ if isinstance(ann, type) else ann}: {err['msg']}") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Algorithm:
    """Base class. Subclasses set ``name`` and ``Config`` and implement the abstract methods.

    Declarations read by the harness (class attributes; the defaults suit off-policy actor-critics):

    - ``learns_online``: if False the harness still collects and evaluates online but never calls
      ``update`` there (the paper's BC is a flat line online).
    - ``batch_extras``: names of extra per-row buffer columns that every batch carries in ``Batch.extras``.
      The harness fills the columns it knows (``benchmarks/run/columns.py``: ``mc_return``, the Monte-Carlo
      return-to-go of the row's episode, ``mc_returns``; ``next_act``, the data's next action); any other column
      is the algorithm's to write (AWR's returns and advantages, in ``prepare_updates``).
    - ``pretrains``: if False the offline phase takes no gradient steps (RLPD); the prior data still fills the
      buffer and the switch is still evaluated.
    - ``presets``: named config overrides, e.g. AWAC's "hand" variant; a task picks the one named after its
      environment (``Task.score_family``: AWR's "halfcheetah") or else its family ("hand", "mujoco") where it exists.
    - a config key ``end_at_goal`` (``ends_at_goal``), on tasks with a goal (the binary hand tasks): the harness
      makes every step at the goal terminal, in the prior data (whose trajectories it cuts after their last step
      at the goal, dropping those that never reach it) and online (an episode ends at its first step there;
      evaluation keeps the task's own episodes and success rule). Cal-QL's and CQL's hand protocol.
    - a config key ``random_steps``: the first that many online environment steps take
      uniformly random actions and run no update (RLPD's ``--start_training``); evaluations go on as scheduled.
    - ``demo_batch_size``: rows of a second minibatch, drawn from the prior data's demonstration rows only and
      passed as ``Batch.demo`` with every batch (SAC+BC's behaviour-cloning term).

    An algorithm knows nothing of speed options: the harness runs ``update`` as it is (``--bf16`` wraps the whole
    call in autocast from outside).
    """

    name: ClassVar[str] = "base"
    Config: ClassVar[type[Config]] = Config
    learns_online: ClassVar[bool] = True
    batch_extras: ClassVar[tuple[str, ...]] = ()
    pretrains: ClassVar[bool] = True
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    # learned tensors that live outside every module (SAC's log alpha): saved and restored under their own names
    loose_tensors: ClassVar[tuple[str, ...]] = ()

    def __init__(self, obs_dim: int, act_dim: int, config: Config, device: str | torch.device = "cpu"):
        self.obs_dim = obs_dim
        self.act_dim = act_dim
        self.cfg = config
        self.device = torch.device(device)
        self.grad_steps = 0
        random_steps(config)  # a negative count is bad input before anything runs

    # -- the protocol's rhythm --------------------------------------------------------------
    @property
    def discount(self) -> float:
        """The discount of the algorithm's returns, its config's ``gamma``. The harness computes the diagnostic
        Monte-Carlo returns (``mc_return``, the reference for ``q_estimate``) with it and records it in the
        run's config.json. An algorithm whose config has no ``gamma`` states its discount instead (BC)."""
        return float(self.cfg.gamma)

    @property
    def ends_at_goal(self) -> bool:
        return ends_at_goal(self.cfg)

    @property
    def random_steps(self) -> int:
        return random_steps(self.cfg)

    def batch_size(self, phase: str) -> int:
        """Minibatch size for ``phase`` in {"offline", "online"}: the config's ``batch_size``, or offline its
        ``offline_batch_size`` where it has that key and it is set (rlkit's AWACTrainer pretrains on batches of
        ``bc_batch_size``: AWAC, SAC+BC)."""
        offline = getattr(self.cfg, "offline_batch_size", None) if phase == "offline" else None
        return int(offline or self.cfg.batch_size)

    def online_rhythm(self) -> Rhythm:
        """The online rhythm (``Rhythm``); the default is one update per environment step. AWR collects
        ``samples_per_iter`` steps, then runs its block of value and policy steps."""
        return Rhythm(1, 1)

    def demo_batch_size(self) -> int:
        """Rows of the demonstration minibatch that comes with every batch (``Batch.demo``); 0 (default): none.
        The demonstration rows are the prior data's rows that its file (or its task) marks as such
        (``Dataset.demo``); where nothing marks them every prior row counts, and the run records a warning."""
        return 0

    def online_mix(self) -> float | None:
        """The share of every online batch drawn from the prior data's rows (the rest from the online rows, e.g.
        RLPD's symmetric sampling: 0.5); None (default): uniformly over the whole buffer."""
        return None

    def mc_returns(self, rew: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """The ``mc_return`` column of an episode's (or a dataset's) rows in time order: by default the discounted
        return-to-go of the rewards with the algorithm's ``discount`` (``returns_to_go``)."""
        return returns_to_go(rew, ends, self.discount)

    def buffer_capacity(self, offline_size: int, online_steps: int) -> int:
        """Replay capacity. Default: everything (offline data plus every online transition)."""
        return offline_size + online_steps

    def budget_warnings(self, total_updates: int) -> list[str]:
        """Problems with a run's budget of ``total_updates`` gradient steps (offline + online), e.g. one that
        ends inside a warm-up. The harness prints them when the run starts and records them in the run's
        config.json (``warnings``); the report marks such runs. Default: none."""
        return []

    def past_warmup(self) -> None:  # noqa: B027 - optional hook
        """Skip to the steady-state update, past any warm-up phase (BEAR's MMD-only steps, SACfD-prior's BC
        steps). Used by the speed measurements, which time the update that dominates a run. Default: none."""

    def prepare_updates(self, buffer) -> None:  # noqa: B027 - optional hook
        """Called before every block of updates (e.g. AWR recomputes TD(lambda) returns)."""

    def on_phase_switch(self, buffer) -> None:  # noqa: B027 - optional hook
        """Called once between the offline and the online phase (CQL's online weight, ReBRAC's BC schedule)."""

    def on_resume(self, buffer) -> None:  # noqa: B027 - optional hook
        """Called when a run continues from a checkpoint, after ``load_state_dict`` and the buffer's restore
        (e.g. AWR re-attaches the buffer it refreshes its returns in)."""

    # -- what every algorithm implements ----------------------------------------------------
    def act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        raise NotImplementedError

    def update(self, batch: Batch) -> dict[str, float]:
        raise NotImplementedError

    def modules(self) -> dict[str, torch.nn.Module | torch.optim.Optimizer]:
        """Everything that makes up the state: networks, target networks, optimizers."""
        raise NotImplementedError

    # -- diagnostics used by the analysis (optional) ----------------------------------------
    def log_likelihood(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor | None:
        """Per-sample log pi(a|s); None if the policy has no density."""
        return None

    def q_value(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor | None:
        """Per-sample Q(s, a) estimate (min over the ensemble); None if there is no critic."""
        return None

    # -- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = {k: m.state_dict() for k, m in self.modules().items()}
        state["_grad_steps"] = self.grad_steps
        state.update({name: getattr(self, name).detach().clone() for name in self.loose_tensors})
        state.update(self.extra_state())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, m in self.modules().items():
            m.load_state_dict(state[k])
        self.grad_steps = int(state["_grad_steps"])
        with torch.no_grad():
            for name in self.loose_tensors:
                getattr(self, name).copy_(torch.as_tensor(state[name], device=self.device))
        self.load_extra_state(state)

    def extra_state(self) -> dict[str, Any]:
        """Other state that is not inside a module (counters, flags); loose tensors go in ``loose_tensors``."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        pass

    def save(self, path: str) -> None:
        torch.save(self.state_dict(), path)

    def load(self, path: str) -> None:
        """Load a state written by ``save``. Only tensors, numbers, strings and containers are read
        (``weights_only=True``): a file from elsewhere cannot run code when it is loaded."""
        self.load_state_dict(torch.load(path, map_location=self.device, weights_only=True))

    # -- helpers shared by subclasses ---------------------------------------------------------
    def _obs_tensor(self, obs: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.device)
