"""A runtime home this process may only read (issue 13, finding 6).

The home is made read-only with ``chmod``; under root, which ignores permission bits, the checks run
in a child process as the unprivileged user ``nobody`` (through util-linux ``setpriv``). Pages that only
read keep working on the read-only store, and every write, command or odd path is refused with one sentence.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.data import store
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow  # each test runs the CLI or a page in child processes as another user

READER_UID = 65534
"""Who reads the home when the tests run as root (``nobody``)."""

PAGE_CHECK = """
import sys
from streamlit import config
from streamlit.testing.v1 import AppTest

config.set_option("server.address", "127.0.0.1")
at = AppTest.from_file(sys.argv[1], default_timeout=120)
at.run()
assert not at.exception, [e.value for e in at.exception]
at.switch_page(sys.argv[2])
at.run()
assert not at.exception, [e.value for e in at.exception]
print("errors:", [e.value for e in at.error])
print("cells:", sorted({str(v) for frame in at.dataframe for v in frame.value.get("name", [])}))
"""

STORE_CHECK = """
from core.data import fleet_ops, queries, store
from core.errors import UserError

print("writable:", store.prepare())
with store.connect(read_only=True) as con:
    print("datasets:", sorted(queries.dataset_names(con)))
for write in (lambda: store.connect().__enter__(),
              lambda: fleet_ops.record_outcome("test_FD001", "1", 500, "failure")):
    try:
        write()
    except UserError as err:
        print("refused:", err)
"""


CLI_CHECK = """
import contextlib, io, json, os, sys
from core import cli

runs, odd = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for argv, (variable, value) in [(run, (None, None)) for run in runs] + [(["datasets"], pair) for pair in odd]:
    saved = dict(os.environ)
    if variable:
        os.environ[variable] = value
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(argv))
        except BaseException as exc:
            import traceback
            code = 99
            err.write("Traceback " + "".join(traceback.format_exception(exc)))
    os.environ.clear()
    os.environ.update(saved)
    print(json.dumps({"argv": argv, "code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}))
"""


def _set_mode(root: Path, writable: bool) -> None:
    for folder, _, names in os.walk(root):
        for name in names:
            (Path(folder) / name).chmod(0o644 if writable else 0o444)
        Path(folder).chmod(0o755 if writable else 0o555)


@pytest.fixture(scope="module")
def read_only_home(cmapss_slice: Callable[..., list[str]], cmapss_text: Callable[[str], str]) -> Iterator[Path]:
    """A home a server has used (folders, registry) with a few FD001 engines loaded, then made read-only
    (outside pytest's private temp folder, so the unprivileged reader can reach it)."""
    from core import config
    from core.data import ingest
    from core.operations import registry

    base = Path(tempfile.mkdtemp(prefix="pm-readonly-"))
    base.chmod(0o755)
    files, home = base / "files", base / "home"
    files.mkdir()
    (files / "train_FD001.txt").write_text("\n".join(cmapss_slice("train_FD001", units=3)) + "\n")
    (files / "test_FD001.txt").write_text("\n".join(cmapss_slice("test_FD001", units=2)) + "\n")
    (files / "RUL_FD001.txt").write_text("\n".join(cmapss_text("RUL_FD001").splitlines()[:2]) + "\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PM_HOME", str(home))
        mp.delenv("PM_DUCKDB", raising=False)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        config.ensure_home()
        registry.init()
        ingest.load([files])
    _set_mode(base, writable=False)
    try:
        yield home
    finally:
        _set_mode(base, writable=True)
        shutil.rmtree(base)


def as_reader(args: list[str], home: Path, **env: str) -> subprocess.CompletedProcess:
    """Run ``python args`` in the repository with ``PM_HOME=home``, as a user who cannot write the home."""
    scratch = Path(tempfile.mkdtemp(prefix="pm-reader-"))
    scratch.chmod(0o777)
    variables = {**{k: v for k, v in os.environ.items() if not k.startswith(("PM_", "MLFLOW_"))},
                 "PM_HOME": str(home), "HOME": str(scratch), "PM_DB_LOCK_WAIT_S": "1", **env}
    prefix = (["setpriv", f"--reuid={READER_UID}", f"--regid={READER_UID}", "--clear-groups"]
              if os.geteuid() == 0 else [])
    try:
        return subprocess.run([*prefix, sys.executable, *args], cwd=REPO_ROOT, env=variables, capture_output=True,
                              text=True, timeout=300, check=False)
    finally:
        shutil.rmtree(scratch)


@pytest.fixture(scope="module")
def reader(read_only_home: Path) -> Callable[..., subprocess.CompletedProcess]:
    """:func:`as_reader` on the read-only home; skips when the unprivileged user cannot run this checkout."""
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv, so no process can be denied writing the home")
    probe = as_reader(["-c", "import core.data.store"], read_only_home)
    if probe.returncode != 0:
        pytest.skip(f"user {READER_UID} cannot import this checkout: {probe.stderr.strip()[-200:]}")
    assert stat.S_IMODE(read_only_home.stat().st_mode) == 0o555
    return lambda args, **env: as_reader(args, read_only_home, **env)


def test_reads_work_and_writes_are_refused_with_a_sentence(reader, read_only_home: Path) -> None:
    done = reader(["-c", STORE_CHECK])
    assert done.returncode == 0, done.stderr
    sentence = store.read_only_sentence(read_only_home / "fleet.duckdb")
    assert done.stdout.splitlines() == ["writable: False", "datasets: ['test_FD001', 'train_FD001']",
                                        f"refused: {sentence}", f"refused: {sentence}"]


def test_commands_read_or_say_one_sentence(reader, read_only_home: Path) -> None:
    loaded = str(read_only_home.parent / "files" / "train_FD001.txt")
    runs = [("datasets",), ("drift", "--reference", "train_FD001", "--current", "test_FD001"),
            ("ingest", loaded), ("score", "--dataset", "test_FD001", "--no-record"), ("ingest", "/proc/self/mem")]
    odd = [("PM_DUCKDB", "/proc/self/mem"), ("PM_HOME", "/proc/self/mem")]
    done = reader(["-c", CLI_CHECK, json.dumps(runs), json.dumps(odd)])
    assert done.returncode == 0, done.stderr[-2000:]
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(results) == len(runs) + len(odd)
    for result in results:
        assert "Traceback" not in result["stderr"], result
        assert result["code"] == 0 or len(result["stderr"].strip().splitlines()) == 1, result
    listed, drift, ingest, score, memory, *odd_homes = results
    assert listed["code"] == 0 and "train_FD001" in listed["stdout"]
    assert drift["code"] == 0 and "prediction_psi: n/a (no model)" in drift["stdout"]
    assert ingest["stderr"].strip() == f"error: {store.read_only_sentence(read_only_home / 'fleet.duckdb')}"
    assert score["code"] == 1 and score["stderr"].startswith("error: ")
    assert memory["stderr"].strip() == "error: /proc/self/mem could not be read: Input/output error."
    assert all(r["code"] == 1 and "/mem" in r["stderr"] for r in odd_homes)


def test_the_data_page_keeps_working(reader) -> None:
    # The API token comes from the environment: a read-only home cannot keep a generated one.
    done = reader(["-c", PAGE_CHECK, str(REPO_ROOT / "app.py"), "pages/data.py"], PM_API_TOKEN="t" * 32)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stdout.splitlines()[-2:] == ["errors: []", "cells: ['test_FD001', 'train_FD001']"]
