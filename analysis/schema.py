"""The results contract written by the harness, and its validation.

Every check raises :class:`SchemaError` with a one-line message that names the offending file and, where
it applies, the column or key, e.g. ``results/runs/awac-pen-0/evals.csv: missing column 'env_step'``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.run import results


class SchemaError(ValueError):
    """A results file does not follow the contract (missing file, column, key, or a bad value)."""


PHASES = ("offline", "online")

# the columns and their kinds are the harness's contract (benchmarks/run/results.py), read from there
EVALS_STR = results.columns_of(results.EVAL_COLUMNS, "str")
EVALS_INT = results.columns_of(results.EVAL_COLUMNS, "int")
EVALS_FLOAT_REQUIRED = results.columns_of(results.EVAL_COLUMNS, "float")  # must be a number on every row
EVALS_FLOAT_OPTIONAL = results.columns_of(results.EVAL_COLUMNS, "float?")  # empty -> NaN
EVALS_COLUMNS = tuple(results.EVAL_COLUMNS)

TRAIN_STR = results.columns_of(results.TRAIN_COLUMNS, "str")
TRAIN_INT = results.columns_of(results.TRAIN_COLUMNS, "int")
TRAIN_FLOAT_OPTIONAL = results.columns_of(results.TRAIN_COLUMNS, "float?")
TRAIN_COLUMNS = tuple(results.TRAIN_COLUMNS)

CONFIG_KEYS = ("algo", "task", "seed", "offline_steps", "online_steps", "eval_every")


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def read_csv_checked(path: Path, columns: tuple[str, ...], str_columns: tuple[str, ...]) -> pd.DataFrame:
    """Read a CSV, failing with :class:`SchemaError` if it is missing, unreadable or lacks a column."""
    if not path.is_file():
        raise SchemaError(f"{path}: missing file")
    try:
        df = pd.read_csv(path, dtype={c: str for c in str_columns})
    except pd.errors.EmptyDataError:
        expected = ", ".join(columns)
        raise SchemaError(f"{path}: file is empty (expected a header with columns {expected})") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{path}: not a readable CSV ({_one_line(exc)})") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        names = ", ".join(f"'{c}'" for c in missing)
        raise SchemaError(f"{path}: missing column{'s' if len(missing) > 1 else ''} {names}")
    return df


# Every frame being validated carries where each row came from, so errors can name the file and line.
FILE, LINE = "_file", "_line"


def tag_rows(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Add the source file and its line number (header = line 1) to every row of a freshly read CSV."""
    return df.assign(**{FILE: str(path), LINE: np.arange(2, len(df) + 2)})


def _bad_row(df: pd.DataFrame, column: str, mask, what: str) -> SchemaError:
    idx = int(np.flatnonzero(np.asarray(mask))[0])
    row = df.iloc[idx]
    return SchemaError(f"{row[FILE]}: column '{column}' {what} (line {row[LINE]}: {row[column]!r})")


def coerce_columns(
    df: pd.DataFrame,
    str_cols: tuple[str, ...],
    int_cols: tuple[str, ...],
    float_required: tuple[str, ...] = (),
    float_optional: tuple[str, ...] = (),
) -> pd.DataFrame:
    """Return a copy with the contract's dtypes; raise :class:`SchemaError` naming the first bad cell.

    ``df`` must carry the ``_file``/``_line`` columns of :func:`tag_rows` (frames of several files can be
    validated at once).
    """
    out = df.copy()
    for col in str_cols:
        text = out[col].astype(str).str.strip()
        empty = out[col].isna() | (text == "")
        if empty.any():
            raise _bad_row(out, col, empty, "has an empty value")
        out[col] = text
    for col in int_cols + float_required + float_optional:
        numeric = pd.to_numeric(out[col], errors="coerce")
        not_numeric = numeric.isna() & out[col].notna()
        if not_numeric.any():
            raise _bad_row(out, col, not_numeric, "is not numeric")
        if (col in int_cols or col in float_required) and numeric.isna().any():
            raise _bad_row(out, col, numeric.isna(), "has an empty value")
        if col in int_cols:
            fractional = numeric != np.round(numeric)
            if fractional.any():
                raise _bad_row(out, col, fractional, "is not an integer")
            out[col] = numeric.astype(np.int64)
        else:
            out[col] = numeric.astype(np.float64)
    return out


def validate_evals(df: pd.DataFrame) -> pd.DataFrame:
    """Typed copy of tagged ``evals.csv`` rows; checks dtypes, phases and env_step of offline rows."""
    out = coerce_columns(df, EVALS_STR, EVALS_INT, EVALS_FLOAT_REQUIRED, EVALS_FLOAT_OPTIONAL)
    check_phases(out)
    offline_env = (out["phase"] == "offline") & (out["env_step"] != 0)
    if offline_env.any():
        raise _bad_row(out, "env_step", offline_env, "must be 0 on offline rows")
    for col in ("grad_step", "env_step"):
        if (out[col] < 0).any():
            raise _bad_row(out, col, out[col] < 0, "is negative")
    return out


def validate_train(df: pd.DataFrame) -> pd.DataFrame:
    """Typed copy of tagged ``train.csv`` rows (long format: run_id, grad_step, phase, metric, value)."""
    out = coerce_columns(df, TRAIN_STR, TRAIN_INT, (), TRAIN_FLOAT_OPTIONAL)
    check_phases(out)
    return out


def check_phases(df: pd.DataFrame) -> None:
    """Raise if a ``phase`` value is neither 'offline' nor 'online'."""
    bad = ~df["phase"].isin(PHASES)
    if bad.any():
        raise _bad_row(df, "phase", bad, "must be 'offline' or 'online'")


def check_matches(df: pd.DataFrame, column: str, expected: pd.Series, source: str) -> None:
    """Raise if ``df[column]`` differs from ``expected`` row by row (e.g. run_id vs its folder name)."""
    bad = (df[column].astype(str) != expected.astype(str)).to_numpy()
    if bad.any():
        idx = int(np.flatnonzero(bad)[0])
        raise _bad_row(df, column, bad, f"disagrees with {source} ({expected.iloc[idx]!r})")


def read_config(path: Path) -> dict:
    """Parsed ``config.json``; raises :class:`SchemaError` on a missing file, bad JSON or missing key."""
    data = read_json(path)
    missing = [k for k in CONFIG_KEYS if k not in data]
    if missing:
        names = ", ".join(f"'{k}'" for k in missing)
        raise SchemaError(f"{path}: missing key{'s' if len(missing) > 1 else ''} {names}")
    for key in ("seed", "offline_steps", "online_steps", "eval_every"):
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) or value < 0:
            raise SchemaError(f"{path}: key '{key}' must be a non-negative integer (got {value!r})")
        data[key] = int(value)
    for key in ("algo", "task"):
        if not isinstance(data[key], str) or not data[key]:
            raise SchemaError(f"{path}: key '{key}' must be a non-empty string (got {data[key]!r})")
    return data


def read_json(path: Path) -> dict:
    """Parsed JSON object from ``path`` or :class:`SchemaError`."""
    if not path.is_file():
        raise SchemaError(f"{path}: missing file")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{path}: not valid JSON ({_one_line(exc)})") from None
    if not isinstance(data, dict):
        raise SchemaError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data
