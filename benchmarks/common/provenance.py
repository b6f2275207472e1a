"""Which code made a result: the git commit and a hash of the sources that can change the numbers.

``code_identity()`` = {"commit": ..., "code_hash": ...}. The hash covers every Python file under
``algorithms/`` and ``benchmarks/`` (path and bytes, in sorted order) and the project's pinned dependencies
(pyproject.toml ``[project] dependencies``, or the installed package's requirements where no pyproject.toml is
beside the code). Docs, tests, results and analysis do not enter it: a commit that touches only those leaves a
run's identity unchanged, so a long grid keeps resuming while its results are committed.

Every checkpoint records the identity; a resume under another code hash is refused unless the user allows it
(``--allow-code-change``), and then the change is recorded in the run's meta.json (``code_changes``).
"""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HASHED_PACKAGES = ("algorithms", "benchmarks")


def git_commit() -> str:
    """HEAD of the checkout the code runs from (``-dirty`` with uncommitted changes to tracked files), or
    "unknown" outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=5)
        if out.returncode == 0:
            return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def _pinned_dependencies() -> str:
    path = os.path.join(ROOT, "pyproject.toml")
    if os.path.isfile(path):
        import tomllib

        with open(path, "rb") as f:
            deps = tomllib.load(f).get("project", {}).get("dependencies", [])
    else:  # an installed wheel: its recorded requirements
        from importlib import metadata

        try:
            deps = [r for r in metadata.requires("awac-bench") or [] if "extra ==" not in r]
        except metadata.PackageNotFoundError:
            deps = []
    return "\n".join(sorted(deps))


def source_hash(root: str = ROOT) -> str:
    """sha256 over the Python sources of ``HASHED_PACKAGES`` under ``root`` and the pinned dependencies."""
    h = hashlib.sha256()
    for pkg in HASHED_PACKAGES:
        base = os.path.join(root, pkg)
        files = []
        for dirpath, dirnames, names in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            files += [os.path.join(dirpath, n) for n in names if n.endswith(".py")]
        for p in sorted(files):
            h.update(os.path.relpath(p, root).replace(os.sep, "/").encode() + b"\0")
            with open(p, "rb") as f:
                h.update(f.read() + b"\0")
    h.update(_pinned_dependencies().encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def code_identity() -> dict[str, str]:
    """The identity of the code this process runs (computed once: a process runs one version of the code)."""
    return {"commit": git_commit(), "code_hash": source_hash()}


def describe_change(old: dict | None, new: dict) -> str:
    """One phrase: from which code to which."""
    if not old:
        return f"a checkpoint with no code identity (an older version) -> code {new['code_hash'][:12]} " \
               f"(commit {new['commit'][:12]})"
    return (f"code {old.get('code_hash', '?')[:12]} (commit {str(old.get('commit', '?'))[:12]}) -> "
            f"{new['code_hash'][:12]} (commit {new['commit'][:12]})")


# -- across a results folder ---------------------------------------------------------------------------------
def _short(x: str) -> str:
    return x[:12] if x not in ("unrecorded", "unknown") else x


def summarize(run_dirs: list[str]) -> dict:
    """Which commits, code hashes and dataset checksums the runs in ``run_dirs`` were made with.

    A run counts under every commit and code hash it ran at (its start and each resume, meta.json ``resumed``);
    a run from before code hashes were recorded counts as "unrecorded". Dataset checksums are grouped by task
    (config.json ``dataset_sha256``): two runs of one task on different data do not measure the same thing."""
    import json

    commits: dict[str, list[str]] = {}
    hashes: dict[str, list[str]] = {}
    datasets: dict[str, dict[str, list[str]]] = {}
    changes: dict[str, list[str]] = {}
    for d in sorted(run_dirs):
        rid = os.path.basename(os.path.normpath(d))
        try:
            with open(os.path.join(d, "config.json")) as f:
                config = json.load(f)
        except (OSError, ValueError):
            continue
        try:
            with open(os.path.join(d, "meta.json")) as f:
                meta = json.load(f)
        except (OSError, ValueError):
            meta = {}
        sittings = [meta, *meta.get("resumed", [])]
        for c in dict.fromkeys(str(s.get("git_commit") or "unknown") for s in sittings):
            commits.setdefault(c, []).append(rid)
        for h in dict.fromkeys(str(s.get("code_hash") or "unrecorded") for s in sittings):
            hashes.setdefault(h, []).append(rid)
        task = str(config.get("task", "?"))
        datasets.setdefault(task, {}).setdefault(str(config.get("dataset_sha256") or "unrecorded"), []).append(rid)
        if meta.get("code_changes"):
            changes[rid] = [str(c.get("change", c)) for c in meta["code_changes"]]
    return {"commits": commits, "code_hashes": hashes, "datasets": datasets, "code_changes": changes}


def _names(runs: list[str], limit: int = 8) -> str:
    shown = ", ".join(f"`{r}`" for r in runs[:limit])
    return shown + (f" and {len(runs) - limit} more" if len(runs) > limit else "")


def _group_lines(label: str, plural: str, groups: dict[str, list[str]]) -> list[str]:
    """One line when there is one value; a warning naming the runs of every value but the commonest otherwise."""
    if len(groups) <= 1:
        (value, runs), = groups.items() if groups else (("none", []),)
        return [f"- {label}: {_short(value)} (all {len(runs)} runs)"]
    order = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    lines = [f"- **Warning: {len(groups)} different {plural}** in one results folder:"]
    lines.append(f"  - {_short(order[0][0])}: {len(order[0][1])} runs")
    lines += [f"  - {_short(v)}: {len(r)} run{'s' if len(r) != 1 else ''}: {_names(r)}" for v, r in order[1:]]
    return lines


def provenance_lines(summary: dict) -> list[str]:
    """Markdown lines for the report's Data section and ``awac-bench status``."""
    lines = [*_group_lines("Commit", "commits", summary["commits"]),
             *_group_lines("Code hash", "code hashes", summary["code_hashes"])]
    for task, groups in sorted(summary["datasets"].items()):
        lines += _group_lines(f"Dataset of `{task}` (sha256)", f"datasets of `{task}`", groups)
    for rid, chs in sorted(summary["code_changes"].items()):
        lines += [f"- **Resumed across a code change** (--allow-code-change): `{rid}`: {c}" for c in chs]
    return lines


def has_warning(summary: dict) -> bool:
    return (len(summary["commits"]) > 1 or len(summary["code_hashes"]) > 1 or bool(summary["code_changes"])
            or any(len(g) > 1 for g in summary["datasets"].values()))


def stale_datasets(summary: dict, manifest_path: str | None = None) -> dict[str, list[str]]:
    """Tasks whose runs used data other than the suite's current reference generation (MANIFEST.json), with the
    checksums they used: results of older data, or of data generated elsewhere."""
    import json

    path = manifest_path or os.path.join(ROOT, "benchmarks", "datasets", "MANIFEST.json")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return {}
    stale = {}
    for task, groups in summary["datasets"].items():
        ref = (manifest.get(task) or {}).get("sha256")
        old = sorted(sha for sha in groups if ref is not None and sha != ref)
        if old:
            stale[task] = old
    return stale
