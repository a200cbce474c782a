"""On-demand benchmarks (``make bench``; not part of ``make test``).

``python -m benchmarks`` runs them all in one process and writes ``runs/bench.json`` and
``runs/bench.md``; each ``bench_*.py`` module also runs on its own. See ``benchmarks/__main__.py``.
"""
