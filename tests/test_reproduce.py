"""`gossipgan reproduce`: the driver (skip, resume, diverged runs), the report, the command."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gossipgan.cli import main
from gossipgan.reproduce import claims
from gossipgan.reproduce import driver as D
from gossipgan.reproduce.spec import RunSpec, analytic_spec


def _sections(report: str) -> dict[int, str]:
    parts = re.split(r"^## Claim (\d+):", report, flags=re.M)
    return {int(n): body for n, body in zip(parts[1::2], parts[2::2], strict=True)}


def _check_claim_section(body: str, report_dir: Path) -> None:
    figures = re.findall(r"!\[claim \d+\]\(([^)]+)\)", body)
    assert figures, body[:300]
    assert all((report_dir / f).is_file() for f in figures)
    assert re.search(r"^\|.*\|$", body, flags=re.M), "no table"
    csvs = re.findall(r"\[(c\d+_table\.csv)\]\(([^)]+)\)", body)
    assert csvs and (report_dir / csvs[0][1]).is_file()
    assert re.search(r"\*\*Verdict: (reproduced|partly|not reproduced|inconclusive)\.\*\*", body)
    assert "**Command.** `gossipgan reproduce" in body


def test_every_claim_module_declares_what_the_report_needs():
    modules = claims()
    assert [m.NUMBER for m in modules] == list(range(1, 9))
    for m in modules:
        assert m.TITLE and m.CLAIM and m.SETUP and callable(m.analyse)
        jobs = m.grids("tiny") if hasattr(m, "grids") else m.specs("tiny")
        names = [j[0] if isinstance(j, tuple) else j.name for j in jobs]
        assert names and len(set(names)) == len(names)
        for scale in ("full", "quick"):  # every config of every scale is valid
            if not hasattr(m, "grids"):
                [s.config() for s in m.specs(scale)]


def test_importing_reproduce_loads_no_network_emulation():
    code = ("import sys, gossipgan.reproduce as r; r.claims()\n"
            "print(sorted(m for m in sys.modules if m.startswith('gossipgan.netem')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout.strip()
    assert out == "[]"


def test_finished_runs_are_skipped_and_interrupted_ones_resumed(tmp_path, monkeypatch):
    spec = analytic_spec("run", {}, 8, 4, game__name="bilinear", game__dim=3,
                         run__checkpoint_every=4, topology__workers=2)
    first = D.run_one(spec, tmp_path)
    assert first.summary["iters"] == 8 and first.rows[-1]["iter"] == 8
    calls = []
    monkeypatch.setattr(D, "train", lambda *a, **k: calls.append(k))
    D.run_one(spec, tmp_path)
    assert calls == []  # finished: skipped
    (tmp_path / "run" / "summary.json").unlink()  # as if killed after the last checkpoint
    assert D._state(spec, tmp_path / "run") == "resume"
    longer = RunSpec("run", {**spec.values, "run.iters": 12})
    monkeypatch.undo()
    again = D.run_one(longer, tmp_path)
    assert again.rows[-1]["iter"] == 12
    assert json.loads((tmp_path / D.TIMING).read_text())["run"] > 0
    assert D._state(spec, tmp_path / "run") == "new"  # shorter than what is there: rerun


def test_a_diverged_run_is_a_result_not_a_crash(tmp_path):
    spec = analytic_spec("blowup", {}, 60, 10, game__name="bilinear", game__dim=3,
                         optim__algo="dpsgda", optim__lr=1e30, topology__workers=2)
    result = D.run_one(spec, tmp_path)
    assert result.diverged and "diverged" in result.diverged
    assert result.final("grad_op_norm_sq") == float("inf")
    assert D._state(spec, tmp_path / "blowup") == "done"


def test_parallel_runs_equal_serial_ones_and_keep_the_timing(tmp_path):
    """--jobs: the same runs in two processes give the same iterates as one after another,
    and the parent records every run's seconds; a second call finds them done."""
    specs = [analytic_spec(f"r{i}", {}, 8, 4, game__name="bilinear", game__dim=3,
                           topology__workers=2, run__seed=i) for i in range(3)]
    serial = D.run_specs(specs, tmp_path / "serial", "serial", progress=False)
    D.run_parallel([(s, tmp_path / "par") for s in specs], 2, "parallel", progress=False)
    timing = json.loads((tmp_path / "par" / D.TIMING).read_text())
    assert sorted(timing) == ["r0", "r1", "r2"] and all(v > 0 for v in timing.values())
    for spec, one in zip(specs, serial, strict=True):
        other = D.load_result(spec, tmp_path / "par" / spec.name)
        assert [r["grad_op_norm_sq"] for r in other.rows] == \
            [r["grad_op_norm_sq"] for r in one.rows]
    D.run_parallel([(s, tmp_path / "par") for s in specs], 2, "again", progress=False)
    assert json.loads((tmp_path / "par" / D.TIMING).read_text()) == timing  # nothing ran


def test_ctrl_c_in_parallel_checkpoints_and_starts_no_queued_run(tmp_path):
    """A Ctrl-C reaches the workers: each running run checkpoints and stops, and the runs
    the pool had already queued do not start; rerunning resumes the interrupted ones."""
    specs = [analytic_spec(f"r{i}", {}, 10**7, 10**6, game__name="bilinear", game__dim=3,
                           topology__workers=2, run__checkpoint_every=10**6)
             for i in range(6)]

    def interrupt() -> None:  # once both workers are training, as a terminal's Ctrl-C would
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list(tmp_path.glob("r*/config.yaml"))) < 2:
            time.sleep(0.2)
        time.sleep(1.0)
        children = multiprocessing.active_children()
        for child in children:
            os.kill(child.pid, signal.SIGINT)
        if not returned.wait(60):  # a queued run started: fail (BrokenProcessPool), not hang
            for child in children:
                child.kill()

    returned = threading.Event()
    threading.Thread(target=interrupt, daemon=True).start()
    try:
        with pytest.raises(D.Interrupted, match="rerun the same command"):
            D.run_parallel([(s, tmp_path) for s in specs], 2, "parallel", progress=False)
    finally:
        returned.set()
    started = sorted(p.parent.name for p in tmp_path.glob("r*/config.yaml"))
    assert len(started) == 2, started  # the four queued runs never began
    for name in started:
        assert D._state(specs[int(name[1:])], tmp_path / name) == "resume"
    assert sorted(json.loads((tmp_path / D.TIMING).read_text())) == started


@pytest.mark.parametrize("argv,needle", [(["--only", "9"], "no claim 9"),
                                         (["--jobs", "0"], "--jobs 0: needs 1 to"),
                                         (["--only", "x"], "--only needs claim numbers"),
                                         (["--quick", "--tiny"], "two scales")])
def test_bad_options_are_one_line(tmp_path, capsys, argv, needle):
    assert main(["reproduce", "--out", str(tmp_path), "--report-only", "--report-dir",
                 str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err


def test_report_only_marks_unrun_claims_and_smaller_scales(tmp_path):
    runs, rep = tmp_path / "runs", tmp_path / "rep"
    assert main(["reproduce", "--tiny", "--only", "4", "--out", str(runs), "--report-dir",
                 str(rep), "--no-progress"]) == 0
    report = (rep / "REPRODUCTION.md").read_text()
    assert "could not" in report.split("## Summary")[0]  # the seed's body was not obtained
    sections = _sections(report)
    assert sorted(sections) == list(range(1, 9))
    _check_claim_section(sections[4], rep)
    assert "tiny scale, full run pending" in sections[4]
    assert "gossipgan reproduce --only 4 --out runs/reproduce" in sections[4]
    assert "**Not run yet.**" in sections[1] and "gossipgan reproduce --only 1" in sections[1]
    (sitting,) = json.loads((runs / "tiny" / "sittings.json").read_text())
    assert sitting["claims"] == [4] and sitting["completed"] and sitting["wall_s"] > 0
    assert "Wall-clock: tiny scale" in report.split("## Claim 1")[0]
    before = (runs / "tiny" / "c4" / D.TIMING).read_text()
    assert main(["reproduce", "--report-only", "--out", str(runs), "--report-dir",
                 str(rep)]) == 0
    assert (runs / "tiny" / "c4" / D.TIMING).read_text() == before  # nothing ran
    assert len(json.loads((runs / "tiny" / "sittings.json").read_text())) == 1


@pytest.mark.slow
def test_tiny_reproduction_end_to_end(tmp_path):
    """Every claim, network claims included, at the test's scale, the simulator claims over
    two processes: each section has its figure, table and verdict."""
    runs, rep = tmp_path / "runs", tmp_path / "rep"
    jobs = "2" if (os.cpu_count() or 1) >= 2 else "1"
    assert main(["reproduce", "--tiny", "--out", str(runs), "--report-dir", str(rep),
                 "--no-progress", "--jobs", jobs]) == 0
    sections = _sections((rep / "REPRODUCTION.md").read_text())
    assert sorted(sections) == list(range(1, 9))
    for body in sections.values():
        _check_claim_section(body, rep)
    assert (rep / "docs" / "reproduction" / "c6_samples_digits.png").is_file()
