"""`gossipgan solve` end to end on a tiny problem (outputs and their contents), `--algo all`,
user mistakes (exit status 2, one line on stderr naming the value, no traceback, no run
directory left behind), and `gossipgan topology --json`."""

import csv
import json
import math
import subprocess
import sys

import pytest
import yaml

from gossipgan.cli import main
from gossipgan.optim import ALGORITHMS
from gossipgan.train.config_io import load_config

TINY = ["--game", "quadratic", "--workers", "4", "--dim", "3", "--batch", "4", "--iters", "20",
        "--no-progress", "--set", "run.log_every=5", "--set", "run.eval_every=10",
        "--set", "run.eval_batch=32", "--set", "game.samples_per_worker=16"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def solve(out, *extra):
    return main(["solve", *TINY, "--out", str(out), *extra])


def read_csv(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def assert_png(path):
    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_MAGIC, path


def test_solve_writes_a_complete_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert solve(out, "--lr", "0.05", "--rounds", "2") == 0
    printed = json.loads(capsys.readouterr().out)

    cfg = load_config(out / "config.yaml")
    assert (cfg.game.name, cfg.game.dim, cfg.topology.workers) == ("quadratic", 3, 4)
    assert (cfg.optim.algo, cfg.optim.lr, cfg.optim.rounds) == ("dposg", 0.05, 2)
    assert (cfg.run.iters, cfg.run.batch, cfg.run.log_every) == (20, 4, 5)
    assert isinstance(yaml.safe_load((out / "config.yaml").read_text()), dict)

    fields, rows = read_csv(out / "metrics.csv")
    for col in ("iter", "wall_s", "grad_op_norm_sq", "consensus", "dist_to_solution",
                "bytes_sent"):
        assert col in fields, col
    assert [int(r["iter"]) for r in rows] == [0, 5, 10, 15, 20]
    assert [r["grad_op_norm_sq"] != "" for r in rows] == [True, False, True, False, True]
    # ring of 4: 2 messages per worker per round, 6 float32 numbers (x and y of dim 3) each
    assert [int(r["bytes_sent"]) for r in rows] == [k * 2 * 2 * 6 * 4 for k in (0, 5, 10, 15, 20)]
    walls = [float(r["wall_s"]) for r in rows]
    assert walls == sorted(walls) and walls[-1] > 0
    assert float(rows[0]["consensus"]) == 0.0  # every worker starts at the same point
    assert float(rows[-1]["dist_to_solution"]) < float(rows[0]["dist_to_solution"])

    summary = json.loads((out / "summary.json").read_text())
    for key in ("final_grad_op_norm_sq", "initial_grad_op_norm_sq", "final_consensus", "iters",
                "wall_s"):
        assert key in summary, key
    assert summary["iters"] == 20
    assert summary["initial_grad_op_norm_sq"] == pytest.approx(float(rows[0]["grad_op_norm_sq"]),
                                                               rel=1e-5)
    assert summary["final_grad_op_norm_sq"] == pytest.approx(float(rows[-1]["grad_op_norm_sq"]),
                                                             rel=1e-5)
    assert summary["final_grad_op_norm_sq"] < summary["initial_grad_op_norm_sq"]
    assert math.isfinite(summary["final_consensus"])
    assert printed == summary

    for name in ("grad_op_norm_sq", "consensus", "dist_to_solution"):
        assert_png(out / "plots" / f"{name}.png")


def test_algo_all_runs_every_algorithm_and_compares(tmp_path, capsys):
    out = tmp_path / "all"
    code = main(["solve", "--game", "bilinear", "--algo", "all", "--workers", "4", "--dim", "2",
                 "--batch", "2", "--iters", "6", "--lr", "0.05", "--out", str(out),
                 "--no-progress", "--set", "run.log_every=3", "--set", "run.eval_every=3",
                 "--set", "run.eval_batch=16", "--set", "game.samples_per_worker=8"])
    assert code == 0
    printed = capsys.readouterr().out
    assert_png(out / "comparison.png")
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(ALGORITHMS)
    for algo in ALGORITHMS:
        run = out / algo
        assert load_config(run / "config.yaml").optim.algo == algo
        summary = json.loads((run / "summary.json").read_text())
        assert summary["algo"] == algo and summary["iters"] == 6
        _, rows = read_csv(run / "metrics.csv")
        assert [int(r["iter"]) for r in rows] == [0, 3, 6]
        assert_png(run / "plots" / "grad_op_norm_sq.png")
        assert algo in printed
    # the centralized baseline keeps every worker on the same point
    cposg = json.loads((out / "cposg" / "summary.json").read_text())
    assert cposg["final_consensus"] == 0.0


def test_refuses_to_overwrite_a_run_unless_asked(tmp_path, capsys):
    out = tmp_path / "run"
    assert solve(out) == 0
    before = (out / "metrics.csv").read_text()
    capsys.readouterr()
    assert solve(out, "--lr", "0.01") == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and str(out) in err and "--overwrite" in err
    assert (out / "metrics.csv").read_text() == before  # the old run is untouched
    assert solve(out, "--lr", "0.01", "--overwrite") == 0
    assert load_config(out / "config.yaml").optim.lr == 0.01


def test_algo_all_refuses_before_running_anything(tmp_path, capsys):
    """A run already in OUT, or in any OUT/<algo>, stops `--algo all` before its first
    algorithm writes; and a single run is not written into an `--algo all` directory."""
    single = tmp_path / "single"
    assert solve(single) == 0
    assert solve(single, "--algo", "all") == 2
    assert "already holds a run" in capsys.readouterr().err
    assert not any(p.is_dir() and p.name in ALGORITHMS for p in single.iterdir())

    many = tmp_path / "many"
    assert solve(many / "dextragrad", "--algo", "dextragrad") == 0  # the last one of `all`
    capsys.readouterr()
    assert solve(many, "--algo", "all") == 2
    err = capsys.readouterr().err
    assert str(many / "dextragrad") in err
    assert not (many / "dposg").exists()  # the first algorithm never started
    assert solve(many, "--algo", "dposg") == 2  # nor a single run on top of them
    assert not (many / "config.yaml").exists()


def _edges(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


BAD = [
    # (id, extra arguments (callable of tmp_path), words the message must contain)
    ("unknown-topology", lambda d: ["--topology", "moebius"], ["'moebius'", "ring", "torus"]),
    ("unknown-game", lambda d: ["--game", "chess"], ["'chess'", "bilinear", "quadratic"]),
    ("unknown-algo", lambda d: ["--algo", "adamw"], ["'adamw'", *ALGORITHMS]),
    ("hypercube-12", lambda d: ["--topology", "hypercube", "--workers", "12"],
     ["hypercube", "power-of-two", "12"]),
    ("torus-prime", lambda d: ["--topology", "torus", "--workers", "7"], ["torus", "7"]),
    ("disconnected", lambda d: ["--topology", "file", "--workers", "4", "--edges",
                                _edges(d, "two.txt", "0 1\n2 3\n")],
     ["disconnected", "two.txt"]),
    ("malformed", lambda d: ["--topology", "file", "--edges",
                             _edges(d, "bad.txt", "0 1\n1 x\n")], ["bad.txt", "1 x"]),
    ("rounds-0", lambda d: ["--rounds", "0"], ["rounds", "0"]),
    ("lr-0", lambda d: ["--lr", "0"], ["lr", "0"]),
    ("lr-negative", lambda d: ["--lr", "-0.5"], ["lr", "-0.5"]),
    ("lr-g-negative", lambda d: ["--lr-g", "-2"], ["lr_g", "-2"]),
    ("iters-0", lambda d: ["--iters", "0"], ["iters", "0"]),
    ("set-unknown-key", lambda d: ["--set", "optim.momentum=0.9"], ["'optim.momentum'"]),
    ("set-unknown-section", lambda d: ["--set", "solver.lr=0.9"], ["'solver.lr'"]),
    ("set-wrong-type", lambda d: ["--set", "optim.rounds=two"], ["optim.rounds", "'two'"]),
    ("set-float-for-int", lambda d: ["--set", "run.iters=2.5"], ["run.iters", "2.5"]),
    ("set-no-equals", lambda d: ["--set", "optim.lr"], ["optim.lr"]),
    ("mixed-on-sgd", lambda d: ["--set", "optim.moments=mixed"], ["moments", "dposg"]),
    ("bad-beta", lambda d: ["--algo", "dpoadam", "--set", "optim.beta1=1.5"], ["beta", "1.5"]),
    ("workers-1", lambda d: ["--workers", "1"], ["ring", "1"]),
]


@pytest.mark.parametrize("make_args, words", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_user_mistakes_exit_2_with_one_line(tmp_path, capsys, make_args, words):
    out = tmp_path / "run"
    # later flags win in argparse, so the bad value overrides TINY's
    code = main(["solve", *TINY, "--out", str(out), *make_args(tmp_path)])
    captured = capsys.readouterr()
    assert code == 2
    err = captured.err.strip()
    assert err.startswith("gossipgan: error: "), err
    assert "\n" not in err and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)
    assert not out.exists()  # refused before anything was written


def test_usage_errors_exit_2_with_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        main(["solve", "--rounds", "three"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gossipgan: error: ") and "\n" not in err and "'three'" in err


def test_the_installed_command_reports_without_traceback(tmp_path):
    """The real entry point, with logging set up as a user would see it."""
    proc = subprocess.run(
        [sys.executable, "-m", "gossipgan", "solve", "--topology", "hypercube", "--workers",
         "12", "--iters", "2", "--out", str(tmp_path / "r"), "--no-progress"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "gossipgan: error: hypercube needs a power-of-two number of workers >= 2, got 12"]


def test_topology_json(capsys):
    assert main(["topology", "ring", "--workers", "8", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    for key in ("name", "workers", "max_degree", "rho", "spectral_gap", "rounds_to_1e-3",
                "time_varying"):
        assert key in facts, key
    assert facts["name"] == "ring" and facts["workers"] == 8 and facts["max_degree"] == 2
    gap = 4 / 3 * math.sin(math.pi / 8) ** 2  # ring with self-weight 1/3 (DESIGN.md section 2)
    assert facts["spectral_gap"] == pytest.approx(gap, rel=1e-9)
    assert facts["rho"] == pytest.approx(1 - gap, rel=1e-9)
    assert facts["rho"] ** facts["rounds_to_1e-3"] <= 1e-3 < facts["rho"] ** (
        facts["rounds_to_1e-3"] - 1)
    assert facts["time_varying"] is False
