"""Experiments: the measurements behind the notebooks, each returning a tidy table (a list of dicts).

One module per notebook, plus the shared parts:

* :mod:`~efs_sqlite.experiments.tables` — results files and tables (every notebook);
* :mod:`~efs_sqlite.experiments.ids` — notebook 01: id collisions, id forms, the rowid's cost;
* :mod:`~efs_sqlite.experiments.measure` — a workload measured through the EFS model, and its row;
* :mod:`~efs_sqlite.experiments.petrou` — Petrou's Lambda + EFS measurement, his workload in the model;
* :mod:`~efs_sqlite.experiments.latency` — each EFS mode's low, typical and high profiles (high fitted
  to Petrou's measurement);
* :mod:`~efs_sqlite.experiments.shards` — notebook 02: the store's operations by journal mode;
* :mod:`~efs_sqlite.experiments.deploy` — notebook 03: the GraphQL server run locally;
* :mod:`~efs_sqlite.experiments.loading` — notebook 04: load checks and loader throughput;
* :mod:`~efs_sqlite.experiments.queries` — notebook 05: GraphQL requests and the query mix;
* :mod:`~efs_sqlite.experiments.backends` — notebook 05: each request kind on both backends;
* :mod:`~efs_sqlite.experiments.writers` — notebook 05: writers on one shard, its limit, a read's tail;
* :mod:`~efs_sqlite.experiments.verdict` — notebook 05's conclusion: EFS or DynamoDB for the mix.

The names notebooks, tests and benchmarks use are re-exported here:
``from efs_sqlite.experiments import query_mix``.
"""

from __future__ import annotations

from efs_sqlite.experiments.backends import backend_comparison
from efs_sqlite.experiments.deploy import LocalServer, serve_local
from efs_sqlite.experiments.ids import ID_SCHEMES, KEY_FORMS, id_collisions, id_forms, rowid_benchmark
from efs_sqlite.experiments.latency import LEVELS, LatencyRange, latency_range, petrou_rows
from efs_sqlite.experiments.loading import check_load, load_throughput
from efs_sqlite.experiments.measure import (
    COST_KEYS,
    LOCKING,
    OP_KINDS,
    WORKLOAD_JOURNAL_MODES,
    Workload,
    request_profile,
)
from efs_sqlite.experiments.petrou import PETROU
from efs_sqlite.experiments.queries import (
    BENCHMARK_QUERY,
    DESIGNS,
    MIX_DOCUMENTS,
    MIX_WEIGHTS,
    benchmark_graph,
    dynamodb_copy,
    graphql_request_ops,
    latency_under,
    mix_capacity,
    mix_summary,
    query_mix,
)
from efs_sqlite.experiments.shards import run_workloads, workloads
from efs_sqlite.experiments.tables import markdown_table, ms_range, results_dir, write_csv, write_json
from efs_sqlite.experiments.verdict import Verdict, decisions, decisions_table, efs_wins_map, verdict
from efs_sqlite.experiments.writers import (
    WRITER_BOUNDS,
    hold_times,
    read_wait_quantile,
    run_writers,
    write_limits,
)

__all__ = [
    "BENCHMARK_QUERY",
    "COST_KEYS",
    "DESIGNS",
    "ID_SCHEMES",
    "KEY_FORMS",
    "LEVELS",
    "LOCKING",
    "MIX_DOCUMENTS",
    "MIX_WEIGHTS",
    "OP_KINDS",
    "PETROU",
    "WORKLOAD_JOURNAL_MODES",
    "WRITER_BOUNDS",
    "LatencyRange",
    "LocalServer",
    "Verdict",
    "Workload",
    "backend_comparison",
    "benchmark_graph",
    "check_load",
    "decisions",
    "decisions_table",
    "dynamodb_copy",
    "efs_wins_map",
    "graphql_request_ops",
    "hold_times",
    "id_collisions",
    "id_forms",
    "latency_range",
    "latency_under",
    "load_throughput",
    "markdown_table",
    "mix_capacity",
    "mix_summary",
    "ms_range",
    "petrou_rows",
    "query_mix",
    "read_wait_quantile",
    "request_profile",
    "results_dir",
    "rowid_benchmark",
    "run_workloads",
    "run_writers",
    "serve_local",
    "verdict",
    "workloads",
    "write_csv",
    "write_json",
    "write_limits",
]
