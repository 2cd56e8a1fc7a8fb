"""DBOS Python on the shapes of sagaflow's benches/postgres.rs, on PostgreSQL.

ms per durable step over sequential workflows of 40 steps, and steps/s of 100 concurrent
workflows of 10 steps (started together with DBOS.start_workflow, each on DBOS's executor
thread pool), every step returning x + 1. A warm-up of each shape first; medians of ROUNDS
rounds. Configuration is DBOS's default but for the application version and quiet logs.

    DBOS_BENCH_URL=postgresql://postgres@127.0.0.1:5432/dbos_bench python bench.py
"""

import os
import statistics
import time

from dbos import DBOS, DBOSConfig

URL = os.environ.get(
    "DBOS_BENCH_URL", "postgresql://postgres@127.0.0.1:5432/dbos_bench"
)
ROUNDS = int(os.environ.get("DBOS_BENCH_ROUNDS", "3"))
CHAIN = 40
SEQUENTIAL_RUNS = 5
CONCURRENT_RUNS = 100
CONCURRENT_STEPS = 10

config: DBOSConfig = {
    "name": "dbos-python-bench",
    "system_database_url": URL,
    "application_version": "dbos-python-bench-1",
    "log_level": "WARNING",
}
DBOS(config=config)


@DBOS.step()
def add_one(x: int) -> int:
    return x + 1


@DBOS.workflow()
def chain(steps: int) -> int:
    x = 0
    for _ in range(steps):
        x = add_one(x)
    return x


def sequential() -> float:
    """Milliseconds per durable step."""
    began = time.perf_counter()
    for _ in range(SEQUENTIAL_RUNS):
        assert chain(CHAIN) == CHAIN
    return (time.perf_counter() - began) * 1e3 / (SEQUENTIAL_RUNS * CHAIN)


def concurrent() -> float:
    """Durable steps per second."""
    began = time.perf_counter()
    handles = [
        DBOS.start_workflow(chain, CONCURRENT_STEPS) for _ in range(CONCURRENT_RUNS)
    ]
    for handle in handles:
        assert handle.get_result() == CONCURRENT_STEPS
    return CONCURRENT_RUNS * CONCURRENT_STEPS / (time.perf_counter() - began)


def main() -> None:
    DBOS.launch()
    sequential()
    concurrent()
    seq, con = [], []
    for _ in range(ROUNDS):
        seq.append(sequential())
        con.append(concurrent())
    print(
        f"rounds: {ROUNDS} (medians); sequential {[round(s, 2) for s in seq]} ms;"
        f" concurrent {[round(c) for c in con]} steps/s"
    )
    print(f"DBOS Python durable step, sequential:   {statistics.median(seq) * 1e3:8.1f} µs")
    print(f"DBOS Python, 100 concurrent workflows:  {statistics.median(con):8.0f} steps/s")
    DBOS.destroy()


if __name__ == "__main__":
    main()
