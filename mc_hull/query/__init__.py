"""The one query layer: cells and intervals, thresholds, nested entry sizes, run progress and hull-test sweeps.

Everything reads the store through :mod:`mc_hull.store` (only what its
manifests list, verified) and aggregates in DuckDB.
"""

from .cells import (CELL_COLUMNS, IDENTITY, INTERVAL_NOTE, _empty, _schema, agreement, cell_estimates, cell_info,
                    connect, exact_n_half_of, exact_p, parse_params, ratio_histogram, replicate_counts,
                    replicate_halfwidths, run_counts, run_params, verified_statuses)
from .curves import THRESHOLD_COLUMNS, THRESHOLDS_NOTE, curve_n_half, empirical_n_half, thresholds, thresholds_table
from .entry import (ENTRY_COLUMNS, ENTRY_NOTE, MEDIAN_T, MEDIAN_T_NOTE, entry_ecdf, entry_sizes, median_of_t,
                    nested_curves, nested_runs)
from .status import fingerprint, location_problem, run_ids, run_progress, runs
from .sweeps import REDUCTION_ORDER, latest_sweep, sweep_distances, sweep_table, sweeps, sweeps_key

__all__ = ["CELL_COLUMNS", "IDENTITY", "INTERVAL_NOTE", "agreement", "cell_estimates", "cell_info", "connect",
           "exact_p", "exact_n_half_of", "parse_params", "ratio_histogram", "replicate_counts", "replicate_halfwidths",
           "run_counts", "run_params", "verified_statuses", "THRESHOLD_COLUMNS", "THRESHOLDS_NOTE", "curve_n_half", "empirical_n_half", "thresholds",
           "thresholds_table",
           "fingerprint", "location_problem", "run_ids", "run_progress", "runs", "REDUCTION_ORDER",
           "latest_sweep", "sweep_distances", "sweep_table", "sweeps", "sweeps_key", "_empty", "_schema", "ENTRY_COLUMNS", "ENTRY_NOTE",
           "MEDIAN_T", "MEDIAN_T_NOTE", "entry_ecdf", "entry_sizes", "median_of_t", "nested_curves", "nested_runs"]
