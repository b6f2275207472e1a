"""Analysis of offline-to-online results: loading, metrics, statistics, figures, tables and the report.

Modules
-------
``analysis.schema``   the results contract and :class:`SchemaError`
``analysis.load``     :func:`load_results` -> tidy DataFrames (one score per task, signed time ``t``)
``analysis.grid``     ragged curves onto a common grid (union grid, last observation carried forward)
``analysis.metrics``  per-run transition and data-efficiency metrics (pure functions)
``analysis.stats``    IQM, probability of improvement, bootstrap CIs (``scipy.stats.bootstrap``)
``analysis.plots``    the report figures (PNG and PDF, Agg canvas)
``analysis.tables``   "offline → online" tables (markdown, LaTeX) and metric summaries
``analysis.report``   :func:`make_report` (``python -m analysis.report DIR``)

``make_report`` is imported lazily so that ``import analysis`` stays light.
"""

from __future__ import annotations

from analysis.load import Results, load_results
from analysis.schema import SchemaError

__all__ = ["Results", "SchemaError", "load_results", "make_report"]


def make_report(results_dir, out_dir=None):
    """See :func:`analysis.report.make_report`."""
    from analysis.report import make_report as _make_report

    return _make_report(results_dir, out_dir)
