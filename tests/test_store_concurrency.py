"""Several sessions of the server writing and reading the store at once (issue 13, finding 1).

Threads of this process stand for browser sessions and API requests: they call the same functions the
pages and the API call. Whatever the interleaving, each call either succeeds or is refused with one
sentence (a UserError), never a DuckDB exception, and the store stays consistent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from core.data import fleet_ops, ingest, queries, store, writes
from core.data.cmapss import COLUMNS
from core.errors import UserError

ROUNDS = 4
"""Each race is run this many times: one run may happen to serialise itself."""


def together(*calls: Callable[[], object]) -> list[object]:
    """Run the calls in threads released at the same instant; each one's result or exception, in order."""
    gate = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def run(k: int) -> None:
        gate.wait()
        try:
            results[k] = calls[k]()
        except Exception as err:  # noqa: BLE001 - the test inspects every outcome, refusals included
            results[k] = err

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def refusals(results: list[object]) -> list[str]:
    """The sentences of the refused calls; fails the test on any exception that is not a UserError."""
    unexpected = [r for r in results if isinstance(r, Exception) and not isinstance(r, UserError)]
    assert not unexpected, f"not refused with a sentence: {unexpected!r}"
    return [str(r) for r in results if isinstance(r, UserError)]


def consistent() -> dict[str, int]:
    """Rows per dataset, after checking that counts, engines and keys agree everywhere."""
    with store.connect(read_only=True) as con:
        listing = queries.list_datasets(con)
        duplicates = con.execute("SELECT count(*) FROM (SELECT dataset_id, unit, cycle FROM readings "
                                 "GROUP BY ALL HAVING count(*) > 1)").fetchall()[0][0]
        orphans = con.execute("SELECT count(*) FROM readings WHERE dataset_id NOT IN (SELECT id FROM datasets)"
                              ).fetchall()[0][0]
        stored = dict(con.execute("SELECT d.name, count(r.unit) FROM datasets d LEFT JOIN readings r "
                                  "ON r.dataset_id = d.id GROUP BY d.name").fetchall())
        no_engine = con.execute("SELECT count(*) FROM (SELECT DISTINCT dataset_id, unit FROM readings) r "
                                "WHERE NOT EXISTS (SELECT 1 FROM engines e WHERE e.dataset_id = r.dataset_id "
                                "AND e.unit = r.unit)").fetchall()[0][0]
    assert (duplicates, orphans, no_engine) == (0, 0, 0)
    assert dict(zip(listing["name"], listing["rows"], strict=True)) == {
        name: rows for name, rows in stored.items() if name in set(listing["name"])}
    return {str(k): int(v) for k, v in stored.items()}


@pytest.fixture
def files(pm_home: Path, tmp_path: Path, cmapss_slice) -> dict[str, Path]:
    """Small slices of train_FD001 (4 engines) and test_FD001 (3 engines) in an empty store's home."""
    folder = tmp_path / "files"
    folder.mkdir()
    paths = {}
    for name, units in (("train_FD001", 4), ("test_FD001", 3)):
        paths[name] = folder / f"{name}.txt"
        paths[name].write_text("\n".join(cmapss_slice(name, units=units)) + "\n")
    with store.connect():
        pass
    return paths


def delete(name: str) -> None:
    """What the Data page's delete button does."""
    with store.connect() as con:
        writes.delete_dataset(con, name)


def test_the_same_file_loaded_twice_at_once_is_stored_once(files: dict[str, Path]) -> None:
    train = files["train_FD001"]
    expected = len(train.read_text().splitlines())
    for _ in range(ROUNDS):
        results = together(lambda: ingest.load([train]), lambda: ingest.load([train]))
        refused = refusals(results)
        summaries = [r for r in results if isinstance(r, ingest.LoadSummary)]
        assert sum(s.readings_added for s in summaries) == expected
        assert all("nothing was changed" in sentence or "already loaded" in sentence for sentence in refused)
        assert consistent() == {"train_FD001": expected}
        delete("train_FD001")


def test_a_dataset_deleted_twice_at_once_is_deleted_once(files: dict[str, Path]) -> None:
    for _ in range(ROUNDS):
        ingest.load([files["train_FD001"], files["test_FD001"]])
        refused = refusals(together(lambda: delete("train_FD001"), lambda: delete("train_FD001")))
        assert refused == ["No dataset named 'train_FD001' is loaded."]
        assert set(consistent()) == {"test_FD001"}
        delete("test_FD001")


def test_a_load_and_a_delete_at_once_leave_a_whole_dataset_or_none(files: dict[str, Path]) -> None:
    train, test = files["train_FD001"], files["test_FD001"]
    ingest.load([test])
    rows = {name: len(path.read_text().splitlines()) for name, path in files.items()}
    for _ in range(ROUNDS):
        results = together(lambda: ingest.load([train]), lambda: delete("test_FD001"))
        assert refusals(results) == []
        assert consistent() == {"train_FD001": rows["train_FD001"]}
        delete("train_FD001")
        ingest.load([test])


def test_an_append_and_a_delete_of_one_dataset_at_once_leave_it_whole_or_gone(files: dict[str, Path]) -> None:
    lines = files["test_FD001"].read_text().splitlines()
    early, late = files["test_FD001"].with_name("early.txt"), files["test_FD001"].with_name("late.txt")
    early.write_text("\n".join(line for line in lines if int(line.split()[1]) <= 10) + "\n")
    late.write_text("\n".join(line for line in lines if int(line.split()[1]) > 10) + "\n")
    sizes = {len(lines) - 10 * 3, len(lines)}
    for _ in range(ROUNDS):
        ingest.load([early], role="fleet", dataset="ops")
        results = together(lambda: ingest.load([late], role="fleet", dataset="ops"), lambda: delete("ops"))
        assert refusals(results) == []
        left = consistent()
        assert left == {} or (set(left) == {"ops"} and left["ops"] in sizes)
        if left:
            delete("ops")


def test_a_load_succeeds_while_other_sessions_keep_reading(files: dict[str, Path]) -> None:
    ingest.load([files["test_FD001"]])
    stop = threading.Event()
    failures: list[Exception] = []
    reads = [0]

    def read_until_stopped() -> None:
        while not stop.is_set():
            try:
                with store.connect(read_only=True) as con:
                    queries.list_datasets(con)
                    queries.readings(con, "test_FD001")
                reads[0] += 1
            except Exception as err:  # noqa: BLE001 - any failure of a reader is what this test looks for
                failures.append(err)
                return

    readers = [threading.Thread(target=read_until_stopped) for _ in range(3)]
    for reader in readers:
        reader.start()
    try:
        summary = ingest.load([files["train_FD001"]])
        delete("train_FD001")
        ingest.load([files["train_FD001"]])
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert failures == [] and reads[0] > 0
    assert summary.datasets_added == ["train_FD001"]
    assert set(consistent()) == {"train_FD001", "test_FD001"}


def test_two_outcomes_for_one_engine_at_once_close_it_once(files: dict[str, Path]) -> None:
    ingest.load([files["test_FD001"]], role="fleet", dataset="ops")
    with store.connect(read_only=True) as con:
        engines = queries.engines(con, "ops")
    for engine, last in zip(engines["engine"].iloc[:ROUNDS - 1], engines["last_cycle"].iloc[:ROUNDS - 1],
                            strict=True):
        results = together(lambda e=engine, c=int(last): fleet_ops.record_outcome("ops", e, c + 3, "failure"),
                           lambda e=engine, c=int(last): fleet_ops.record_outcome("ops", e, c + 5, "removal"))
        refused = refusals(results)
        assert len(refused) == 1 and refused[0].startswith(f"Engine {engine} of 'ops' was already closed")
    with store.connect(read_only=True) as con:
        closed = queries.engines(con, "ops-closed")
        feedback = con.execute("SELECT count(*) FROM feedback").fetchall()[0][0]
    assert len(closed) == ROUNDS - 1 and feedback == ROUNDS - 1
    consistent()


def test_the_same_readings_appended_twice_at_once_are_stored_once(files: dict[str, Path], cmapss_slice) -> None:
    frame = pd.DataFrame([[float(v) for v in line.split()] for line in cmapss_slice("test_FD001", 2)],
                         columns=COLUMNS)
    rows = frame.drop(columns="unit").assign(engine=frame["unit"].map(lambda u: f"ESN-{int(u)}"))
    for k in range(ROUNDS):
        part = rows[rows["cycle"] <= 5 * (k + 1)]
        results = together(lambda p=part: fleet_ops.append_readings("live", p),
                           lambda p=part: fleet_ops.append_readings("live", p))
        assert refusals(results) == []
        assert sorted(r["readings_added"] for r in results) == [0, 2 * 5 if k else len(part)]
    assert consistent() == {"live": len(rows[rows["cycle"] <= 5 * ROUNDS])}


def test_an_old_store_upgraded_by_two_threads_at_once_is_upgraded_once(schema_1_store: Path) -> None:
    def listing() -> list[str]:
        with store.connect() as opened:
            return queries.list_datasets(opened)["role"].tolist()

    results = together(listing, listing, listing)
    assert refusals(results) == [] and results == [["history"]] * 3
    with store.connect(read_only=True) as opened:
        assert queries.known_sha256(opened) == {"abc": "train_FD001"}
        assert opened.execute("SELECT value FROM store_meta").fetchall() == [(str(store.SCHEMA_VERSION),)]
