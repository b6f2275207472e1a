"""Algorithm registry: every algorithm behind one interface (``algorithms.base.Algorithm``)."""

from __future__ import annotations

from typing import Any

from algorithms.base import Algorithm, Batch, Config, Rhythm, UserError

REGISTRY: dict[str, type[Algorithm]] = {}


def register(cls: type[Algorithm]) -> type[Algorithm]:
    REGISTRY[cls.name] = cls
    return cls


def get(name: str) -> type[Algorithm]:
    _load_all()
    if name not in REGISTRY:
        raise UserError(f"unknown algorithm '{name}' (known: {', '.join(sorted(REGISTRY))})")
    return REGISTRY[name]


def names() -> list[str]:
    _load_all()
    return sorted(REGISTRY)


def resolve_config(name: str, preset: str | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults, then the named preset's overrides, then the user's overrides (strict keys)."""
    cls = get(name)
    merged: dict[str, Any] = {}
    if preset:
        if preset not in cls.presets:
            known = ", ".join(sorted(cls.presets)) or "none"
            raise UserError(f"unknown preset '{preset}' for algorithm '{name}' (known: {known})")
        merged.update(cls.presets[preset])
    merged.update(overrides or {})
    return cls.Config.from_dict(merged)


def make(name: str, obs_dim: int, act_dim: int, preset: str | None = None,
         overrides: dict[str, Any] | None = None, device: str = "cpu") -> Algorithm:
    cls = get(name)
    return cls(obs_dim, act_dim, resolve_config(name, preset, overrides), device=device)


def _load_all() -> None:
    """Import every module of this package: each algorithm file registers its class (``@register``), so a new
    file is found without a list to keep in sync."""
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")


__all__ = ["Algorithm", "Batch", "Config", "Rhythm", "UserError", "REGISTRY", "get", "make", "names", "register",
           "resolve_config"]
