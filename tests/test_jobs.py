"""The background-job runner (core.operations.jobs) and its CLI, driven with the test-only targets in tests/jobtargets.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core import config
from core.cli import main as cli_main
from core.errors import UserError
from core.operations import job_records, job_runtime, jobs

TARGET = "tests.jobtargets"
DEADLINE_S = 30.0

STARTER = """
import json, pathlib, sys, time
from core.operations import jobs
from core.errors import UserError
go = pathlib.Path(sys.argv[1])
while not go.exists():
    time.sleep(0.005)
try:
    record = jobs.start("train", "tests.jobtargets", sys.argv[2:], config={}, data={}, created_by="starter")
    print(json.dumps({"id": record.id}))
except UserError as err:
    print(json.dumps({"refused": str(err)}))
"""


def poll(check: Callable[[], object], what: str, deadline_s: float = DEADLINE_S) -> object:
    """Call ``check`` until it returns something truthy; fail with ``what`` after the deadline."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


def process_gone(pid: int) -> bool:
    """True once ``pid`` no longer exists or is a zombie nobody reaped (an orphan in a container)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2] in "ZX"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh PM_HOME; any job still active at the end is cancelled so no process outlives the test."""
    monkeypatch.setenv("PM_HOME", str(tmp_path / "home"))
    yield tmp_path / "home"
    for record in jobs.list_jobs(limit=100):
        if not record.finished:
            jobs.cancel(record.id, grace_s=1.0)


def start(mode: str, *extra: str, exclusive: bool = True) -> job_records.JobRecord:
    return jobs.start("train", TARGET, [mode, *extra], config={"epochs": 1},
                      data={"snapshot": "snap.parquet"}, created_by="tester", exclusive=exclusive)


def finished(job_id: str) -> job_records.JobRecord | None:
    record = jobs.get(job_id)
    return record if record.finished else None


def test_job_reports_progress_then_succeeds_with_result() -> None:
    job = start("finish", "--steps", "10", "--sleep", "0.1")
    assert job.state == "running" and job.pid and job.config == {"epochs": 1}
    assert jobs.running().id == job.id

    midway = poll(lambda: (r := jobs.get(job.id)).state == "running" and 0 < r.step < 10 and r,
                  "progress while running")
    assert midway.phase == "training" and midway.total == 10
    assert 0 < midway.progress < 1 and midway.eta_s is not None and midway.eta_s >= 0

    done = poll(lambda: finished(job.id), "the job to finish")
    assert done.state == "succeeded", done.error
    assert done.result == {"version": 7, "metrics": {"rmse": 12.5}, "steps": 10}
    assert done.progress == 1.0 and done.device == "cpu" and done.error == ""
    assert [entry["step"] for entry in done.losses] == list(range(1, 11))
    assert done.losses[0]["val_loss"] is None and done.losses[1]["train_loss"] == 0.5
    assert done.log_tail[-1] == "step 10 done"
    assert done.started_at and done.finished_at
    assert poll(lambda: jobs.get(job.id).exit_code == 0, "the exit code to be recorded")
    assert jobs.running() is None


def test_cancel_stops_the_job_and_records_cancelled() -> None:
    job = start("sleep", "--sleep", "0.05")
    poll(lambda: jobs.get(job.id).phase == "waiting", "the job to start working")
    record = jobs.cancel(job.id)
    assert record.state == "cancelled" and record.error == "The job was cancelled."
    assert process_gone(job.pid)
    assert poll(lambda: jobs.get(job.id).exit_code == job_records.CANCEL_EXIT_CODE, "the exit code")
    with pytest.raises(UserError, match="already finished"):
        jobs.cancel(job.id)
    assert jobs.running() is None


def test_cancel_kills_a_job_that_ignores_sigterm() -> None:
    job = start("sleep", "--sleep", "0.05", "--ignore-term")
    poll(lambda: jobs.get(job.id).phase == "waiting", "the job to start working")
    record = jobs.cancel(job.id, grace_s=0.3)
    assert record.state == "cancelled"
    assert process_gone(job.pid)
    assert poll(lambda: jobs.get(job.id).exit_code == -signal.SIGKILL, "the exit code")


def test_crashing_job_records_reason_and_traceback_tail() -> None:
    job = start("crash")
    done = poll(lambda: finished(job.id), "the job to finish")
    assert done.state == "failed"
    assert done.error == "ValueError: the snapshot has no rows"
    assert any(line.startswith("Traceback") for line in done.log_tail)
    assert "ValueError: the snapshot has no rows" in done.log_tail
    assert poll(lambda: jobs.get(job.id).exit_code == 1, "the exit code")
    assert "Traceback" in Path(done.log_path).read_text()


def test_job_whose_module_is_missing_fails_with_its_output() -> None:
    job = jobs.start("train", "tests.no_such_job_target", [], config={}, data={})
    done = poll(lambda: finished(job.id), "the job to finish")
    assert done.state == "failed"
    assert done.error.startswith(f"Process {job.pid} exited without finishing (")
    assert any("No module named" in line for line in done.log_tail)


def run_starter(go: Path, *job_args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", STARTER, str(go), *job_args], cwd=config.REPO_ROOT,
                            stdout=subprocess.PIPE, text=True)


def test_job_killed_externally_is_detected_by_another_process(tmp_path: Path) -> None:
    go = tmp_path / "go"
    go.touch()
    starter = run_starter(go, "sleep", "--sleep", "0.05")
    out, _ = starter.communicate(timeout=DEADLINE_S)
    job_id = json.loads(out)["id"]
    # The starter has exited: the job outlived it, and this process never started it.
    record = poll(lambda: (r := jobs.get(job_id)).step > 0 and r, "the job to report progress")
    assert record.state == "running" and not process_gone(record.pid)
    os.kill(record.pid, signal.SIGKILL)
    dead = poll(lambda: finished(job_id), "the dead job to be detected")
    assert dead.state == "failed"
    assert dead.error == f"Process {record.pid} exited without finishing (exit code unknown)."
    assert [r.id for r in jobs.list_jobs()] == [job_id] and jobs.running() is None


def test_reused_pid_is_not_taken_for_the_job(home: Path) -> None:
    job_id = "20250101-120000-abcdef"
    path = job_records.record_path(job_id)
    stale = job_records.JobRecord(id=job_id, kind="train", module=TARGET, state="running", pid=os.getpid(),
                           pid_start=(jobs.process_start_time(os.getpid()) or 0) + 1,
                           created_at="2025-01-01T12:00:00.000+00:00")
    path.write_text(json.dumps(stale.to_dict()))
    record = jobs.get(job_id)
    assert record.state == "failed" and record.error.startswith(f"Process {os.getpid()} exited")
    assert json.loads(path.read_text())["state"] == "failed"


def test_queued_record_left_by_a_crashed_starter_is_failed(home: Path) -> None:
    job_id = "20250101-120000-123456"
    record = job_records.JobRecord(id=job_id, kind="train", module=TARGET, state="queued",
                            created_at="2025-01-01T12:00:00.000+00:00")
    job_records.record_path(job_id).write_text(json.dumps(record.to_dict()))
    assert jobs.running() is None
    assert jobs.get(job_id).error.startswith("The job never started")


def test_two_threads_starting_at_once_give_one_job() -> None:
    barrier = threading.Barrier(4)
    started: list[job_records.JobRecord] = []
    refused: list[str] = []

    def attempt() -> None:
        barrier.wait()
        try:
            started.append(start("sleep"))
        except UserError as err:
            refused.append(str(err))

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE_S)
    assert len(started) == 1 and len(refused) == 3
    assert all(f"A training job is already running (job {started[0].id}, started" in msg for msg in refused)
    assert len(jobs.list_jobs()) == 1


def test_two_processes_starting_at_once_give_one_job(tmp_path: Path) -> None:
    go = tmp_path / "go"
    starters = [run_starter(go, "sleep") for _ in range(2)]
    time.sleep(0.5)  # let both import core.operations.jobs and wait on the go file; correctness does not depend on it
    go.touch()
    answers = [json.loads(p.communicate(timeout=DEADLINE_S)[0]) for p in starters]
    ids = [a["id"] for a in answers if "id" in a]
    refusals = [a["refused"] for a in answers if "refused" in a]
    assert len(ids) == 1 and len(refusals) == 1
    assert f"(job {ids[0]}, started" in refusals[0] and refusals[0].endswith("wait for it or cancel it.")
    running = jobs.running()
    assert running.id == ids[0]
    # Cancelling works from this process too, which did not start the job.
    assert jobs.cancel(running.id).state == "cancelled"
    assert process_gone(running.pid)


def test_non_exclusive_job_runs_beside_the_training() -> None:
    training = start("sleep")
    side = start("finish", "--steps", "2", exclusive=False)
    assert jobs.running().id == training.id
    assert poll(lambda: finished(side.id), "the side job").state == "succeeded"


def test_jobs_can_be_listed_by_kind() -> None:
    training = start("finish", "--steps", "1")
    side = jobs.start("simulate", TARGET, ["finish", "--steps", "1"], config={}, data={}, exclusive=False)
    assert [r.id for r in jobs.list_jobs(kind="train")] == [training.id]
    assert [r.id for r in jobs.list_jobs(kind="simulate")] == [side.id]
    assert {r.id for r in jobs.list_jobs()} == {training.id, side.id}


def test_corrupt_record_is_listed_with_a_clear_error(home: Path) -> None:
    good = start("finish", "--steps", "1")
    poll(lambda: finished(good.id), "the job to finish")
    bad = job_records.record_path("20250101-120000-0badf0")
    bad.write_text('{"id": "20250101-120000-0badf0", "state": "runn')
    listed = {r.id: r for r in jobs.list_jobs()}
    assert listed[good.id].state == "succeeded"
    assert listed[bad.stem].state == "failed" and "is unreadable" in listed[bad.stem].error
    with pytest.raises(UserError, match=f"record of job {bad.stem} .* is unreadable"):
        jobs.get(bad.stem)


def test_bad_requests_are_refused_clearly() -> None:
    with pytest.raises(UserError, match="not a job id"):
        jobs.get("../../etc/passwd")
    with pytest.raises(UserError, match="There is no job"):
        jobs.get("20250101-120000-000000")
    with pytest.raises(UserError, match="not a Python module name"):
        jobs.start("train", "os; rm -rf /", [], config={}, data={})
    with pytest.raises(UserError, match="plain JSON values"):
        jobs.start("train", TARGET, ["finish"], config={"when": object()}, data={})
    assert jobs.list_jobs() == []


def test_reporter_without_a_record_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    reporter = job_runtime.Reporter(None)
    reporter.phase("training")
    reporter.progress(1, 2, train_loss=0.5)
    reporter.succeed({"ok": True})
    assert "[training]" in capsys.readouterr().out
    assert list(config.paths().home.glob("**/*.json")) == []


def test_a_step_reporter_reports_every_step_and_logs_each_new_message_once() -> None:
    reporter = job_runtime.Reporter(None)
    reporter.phase("score")
    report = reporter.step_reporter()
    for done, message in ((1, "pass 1"), (2, "pass 1"), (3, "pass 2")):
        report(done, 4, message)
    assert reporter._fields["step"] == 3 and reporter._fields["total"] == 4
    assert reporter._log == ["[score]", "pass 1", "pass 2"]


def test_cli_lists_shows_and_cancels(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["jobs", "list"]) == 0
    assert capsys.readouterr().out.strip() == "No jobs yet."

    job = start("sleep")
    poll(lambda: jobs.get(job.id).phase == "waiting", "the job to start working")
    assert cli_main(["jobs", "list"]) == 0
    table = capsys.readouterr().out
    assert table.startswith("ID") and job.id in table and "running" in table and "tester" in table

    assert cli_main(["jobs", "show", job.id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["job"]
    assert shown["id"] == job.id and shown["state"] == "running" and shown["data"]["snapshot"] == "snap.parquet"

    assert cli_main(["jobs", "cancel", job.id]) == 0
    assert f"Job {job.id} (train): cancelled" in capsys.readouterr().out
    assert jobs.get(job.id).state == "cancelled"

    assert cli_main(["jobs", "cancel", job.id]) == 1
    assert "already finished (cancelled)" in capsys.readouterr().err
    assert cli_main(["jobs", "show"]) == 1
    assert "needs a job id" in capsys.readouterr().err
    assert cli_main(["jobs", "show", "nope"]) == 1
    assert "is not a job id" in capsys.readouterr().err


def test_cli_runs_as_a_separate_process(home: Path) -> None:
    job = start("finish", "--steps", "1")
    poll(lambda: finished(job.id), "the job to finish")
    out = subprocess.run([sys.executable, "-m", "core", "jobs", "list", "--json"], cwd=config.REPO_ROOT,
                         capture_output=True, text=True, check=True, env=dict(os.environ)).stdout
    assert [j["id"] for j in json.loads(out)["jobs"]] == [job.id]


FOREGROUND_KILLED = """
import os, signal
from core.operations import jobs
with jobs.foreground("train", "core.commands.train", config={}, data={}, created_by="cli") as slot:
    print(slot.id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_foreground_training_holds_the_single_training_slot() -> None:
    with jobs.foreground("train", "core.commands.train", config={"epochs": 1}, data={}, created_by="cli") as slot:
        assert jobs.running().id == slot.id and slot.pid == os.getpid()
        with pytest.raises(UserError, match=rf"already running \(job {slot.id}, .*process {os.getpid()}\)"):
            start("finish")
        with pytest.raises(UserError, match=f"job {slot.id}"), jobs.foreground("tune", "core.commands.tune",
                                                                                 config={}, data={}):
            pytest.fail("a second foreground run got the slot")
        slot.result, slot.device = {"version": 3}, "cpu"
    done = jobs.get(slot.id)
    assert done.state == "succeeded" and done.result == {"version": 3} and jobs.running() is None
    assert done.device == "cpu", "the Models page names the device a command-line training ran on"
    following = start("finish", "--steps", "1")
    assert poll(lambda: finished(following.id), "the next training").state == "succeeded"


def test_a_background_training_refuses_a_foreground_one_and_a_failed_one_is_recorded() -> None:
    job = start("sleep")
    with pytest.raises(UserError, match=f"job {job.id}"), jobs.foreground("train", "core.commands.train",
                                                                          config={}, data={}):
        pytest.fail("a foreground training started beside a background one")
    jobs.cancel(job.id, grace_s=1.0)
    with pytest.raises(UserError, match="no rows"), jobs.foreground("train", "core.commands.train",
                                                                    config={}, data={}) as slot:
        raise UserError("The snapshot has no rows.")
    assert jobs.get(slot.id).state == "failed" and jobs.get(slot.id).error == "The snapshot has no rows."


def test_a_killed_foreground_training_frees_the_slot() -> None:
    out = subprocess.run([sys.executable, "-c", FOREGROUND_KILLED], cwd=config.REPO_ROOT, capture_output=True,
                         text=True, timeout=DEADLINE_S, check=False)
    assert out.returncode == -signal.SIGKILL
    record = jobs.get(out.stdout.strip())
    assert record.state == "failed" and record.error.startswith("Process ") and jobs.running() is None


def test_a_job_cannot_start_on_an_unwritable_home(home: Path) -> None:
    home.mkdir(parents=True)
    (home / "jobs").write_text("a file where the jobs folder should be")
    try:
        for attempt in (lambda: start("finish"), lambda: jobs.foreground("train", "m", config={}, data={}).__enter__()):
            with pytest.raises(UserError, match="No job can start: its record cannot be written in .*jobs"):
                attempt()
    finally:
        (home / "jobs").unlink()


FOREGROUND_WAITS = """
import time
from core.operations import jobs
with jobs.foreground("train", "core.commands.train", config={}, data={}, created_by="cli") as slot:
    print(slot.id, flush=True)
    time.sleep(60)
"""


def test_cancelling_a_foreground_training_stops_that_process_alone() -> None:
    holder = subprocess.Popen([sys.executable, "-c", FOREGROUND_WAITS], cwd=config.REPO_ROOT, stdout=subprocess.PIPE,
                              text=True)  # in this test's process group: a group signal would reach pytest too
    job_id = holder.stdout.readline().strip()
    assert jobs.cancel(job_id, grace_s=2.0).state == "cancelled"
    assert holder.wait(timeout=DEADLINE_S) == -signal.SIGTERM
    assert jobs.running() is None and jobs.get(job_id).state == "cancelled"
