"""Small UID speed: ``generate()`` against a bare clock loop, and encode/decode per id.

Run on its own with ``python benchmarks/bench_uid.py``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from itertools import repeat

from efs_sqlite.uid import SEQ_BITS, decode, encode, generate


def _seconds(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _cpu_seconds(run: Callable[[], None]) -> float:
    """Process CPU time: steadier than wall time when other processes compete for the cores."""
    start = time.process_time()
    run()
    return time.process_time() - start


def bench_generate(n: int = 1_000_000, repeats: int = 5) -> dict[str, float]:
    """Ids per second of ``generate()`` on one thread, the same for a bare loop that only reads the
    clock and shifts it (no lock, no sequence: the least any Python generator must do), and encode /
    decode cost in nanoseconds per id. All measured in this run, so the ratio is comparable.

    The two loops take turns ``repeats`` times; rates are medians, with the slowest and fastest
    repeat of ``generate()``, and its rate per second of process CPU time."""
    time_ns = time.time_ns

    def generator_loop() -> None:
        for _ in repeat(None, n):
            generate()

    def baseline_loop() -> None:
        for _ in repeat(None, n):
            time_ns() // 1_000_000 << SEQ_BITS

    ids = [generate() for _ in range(min(n, 200_000))]
    strings = [encode(uid) for uid in ids]

    def encode_loop() -> None:
        for uid in ids:
            encode(uid)

    def decode_loop() -> None:
        for s in strings:
            decode(s)

    generate_s, baseline_s, cpu_s = [], [], []
    for _ in range(repeats):
        generate_s.append(_seconds(generator_loop))
        baseline_s.append(_seconds(baseline_loop))
        cpu_s.append(_cpu_seconds(generator_loop))
    generate_median, baseline_median = statistics.median(generate_s), statistics.median(baseline_s)
    return {
        "n": n,
        "repeats": repeats,
        "generate_ids_per_s": n / generate_median,
        "generate_ids_per_s_min": n / max(generate_s),
        "generate_ids_per_s_max": n / min(generate_s),
        "generate_ids_per_cpu_s": n / statistics.median(cpu_s),
        "baseline_ids_per_s": n / baseline_median,
        "generate_vs_baseline": baseline_median / generate_median,
        "encode_ns_per_id": _seconds(encode_loop) / len(ids) * 1e9,
        "decode_ns_per_id": _seconds(decode_loop) / len(ids) * 1e9,
    }


if __name__ == "__main__":
    for key, value in bench_generate().items():
        print(f"{key:>22}  {value:>14,.2f}" if isinstance(value, float) else f"{key:>22}  {value:>11,}")
