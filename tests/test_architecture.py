"""The seams of the code: where the loop is, where a run is built, what library code may not do.

Each test fails on a defect the architecture review found (issue 12) or on the rule it set.
"""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gossipgan.cli import main
from gossipgan.comm import SimComm
from gossipgan.errors import ConfigError
from gossipgan.games import build_analytic_game
from gossipgan.optim import DExtraGrad
from gossipgan.sim import Workers
from gossipgan.topology import ring
from gossipgan.train import Config, apply_overrides, train
from gossipgan.train.config import describe

PACKAGE = Path(__file__).resolve().parents[1] / "gossipgan"


def _run_python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    return out.stdout.strip()


def test_importing_the_library_loads_no_network_emulation():
    """The library core never imports the namespace/TUN code of the network benchmark: only
    the `gossipgan bench network` command does."""
    loaded = _run_python(
        "import sys, gossipgan, gossipgan.train, gossipgan.optim, gossipgan.sim, "
        "gossipgan.metrics, gossipgan.topology, gossipgan.comm, gossipgan.games, "
        "gossipgan.data, gossipgan.models, gossipgan.workers\n"
        "print(sorted(m for m in sys.modules if m.startswith('gossipgan.netem')))")
    assert loaded == "[]"


def _calls_and_imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            yield "call", node.func.attr, ast.unparse(node.func.value)
        elif isinstance(node, ast.ImportFrom):
            yield "import", node.module or "", ""
        elif isinstance(node, ast.Import):
            yield from (("import", a.name, "") for a in node.names)


def test_library_code_has_no_process_wide_plotting_state_and_no_prints():
    """No `matplotlib.use` (it changes the backend for the whole process), no pyplot (its
    global figure registry), and no print outside the CLI and the router subprocess."""
    for path in PACKAGE.rglob("*.py"):
        where = str(path.relative_to(PACKAGE))
        for kind, name, owner in _calls_and_imports(path):
            assert not (kind == "call" and name == "use" and owner == "matplotlib"), where
            assert not (kind == "import" and "pyplot" in name), where
        if not where.startswith(("cli/", "netem/router.py")):
            prints = [n for n in ast.walk(ast.parse(path.read_text()))
                      if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "print"]
            assert not prints, f"{where} prints; library code logs through logging"


def test_only_the_loop_module_steps_an_optimizer():
    """`optimizer.step` is called from train/loop.py only (inside gossipgan/): a second loop
    elsewhere would measure something other than training."""
    callers = []
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "optim" or path.name == "classifier.py":
            continue  # the optimizers themselves; the metric classifier's own torch.optim
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "step"):
                callers.append(str(path.relative_to(PACKAGE)))
    # netem/ddp.py is the users' own DDP + torch.optim.Adam loop that the network benchmark
    # measures beside ours (issue 17): it is the baseline being timed, not a second loop of ours
    assert sorted(set(callers)) == ["netem/ddp.py", "train/loop.py"]


def test_config_is_frozen_and_validated_as_a_whole():
    cfg = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.optim.lr = 1.0  # type: ignore[misc]
    new = cfg.with_values({"optim.lr": 0.5})
    assert (cfg.optim.lr, new.optim.lr) == (1e-3, 0.5)
    with pytest.raises(ConfigError, match="optim.moments='mixed' applies only"):
        cfg.with_values({"optim.algo": "cposg", "optim.moments": "mixed"})


def test_every_config_key_has_help_and_the_cli_lists_it(capsys):
    keys = describe()
    assert all(text and "\n" not in text for _, _, text in keys)
    assert main(["config"]) == 0
    printed = capsys.readouterr().out
    assert all(key in printed for key, _, _ in keys)


def test_config_yaml_listing_is_a_config_file(tmp_path, capsys):
    assert main(["config", "--yaml"]) == 0
    path = tmp_path / "defaults.yaml"
    path.write_text(capsys.readouterr().out)
    from gossipgan.train.config_io import load_config

    assert load_config(path) == Config()


def test_train_help_states_the_real_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    cfg = Config()
    assert f"{cfg.game.model.upper()} with {cfg.game.loss} on {cfg.data.dataset}" in text
    assert "DCGAN" not in text


def test_training_does_not_change_the_config_and_keeps_the_derived_beside_it(tmp_path):
    cfg = apply_overrides(Config(), ["run.iters=2", "run.eval_every=2", "run.log_every=2",
                                     "game.name=bilinear", "run.batch=4", "game.dim=3"])
    before = cfg.to_dict()
    summary = train(cfg, tmp_path / "run", progress=False)
    assert cfg.to_dict() == before
    assert summary["derived"]["device"] == "cpu"
    assert summary["derived"]["vectorize"] in ("vmap", "loop")  # auto, resolved
    from gossipgan.train.config_io import load_config

    assert load_config(tmp_path / "run" / "config.yaml") == cfg  # auto stays auto


def test_library_training_leaves_malloc_alone_and_the_cli_opts_in(tmp_path, monkeypatch):
    import gossipgan.cli.train_cmd as train_cmd

    calls = []
    monkeypatch.setattr(train_cmd, "keep_freed_memory", lambda: calls.append(1))
    tiny = ["--set", "game.name=bilinear", "--set", "game.dim=3", "--batch", "4",
            "--iters", "1", "--no-progress"]
    cfg = apply_overrides(Config(), ["game.name=bilinear", "game.dim=3", "run.batch=4",
                                     "run.iters=1"])
    train(cfg, tmp_path / "lib", progress=False)
    assert calls == []
    assert main(["train", "--out", str(tmp_path / "cli"), *tiny]) == 0
    assert calls == [1]


def test_threads_are_restored_after_a_run(tmp_path):
    before = torch.get_num_threads()
    cfg = apply_overrides(Config(), ["game.name=bilinear", "game.dim=3", "run.batch=4",
                                     "run.iters=1", f"run.threads={max(1, before - 1) or 1}"])
    train(cfg, tmp_path / "run", progress=False)
    assert torch.get_num_threads() == before


def test_extragradient_step_returns_the_closure_loss():
    game = build_analytic_game("bilinear", n_workers=2, dim=3, noise=0.0)
    comm = SimComm(ring(2))
    workers = Workers(game, comm.workers, seed=0, batch_size=2)
    opt = DExtraGrad(workers.params.values(), comm=comm, lr=0.1)

    def closure():
        workers.compute_grads()
        return 42.0

    assert opt.step(closure) == 42.0


def test_loading_another_processes_workers_is_a_clear_error():
    game = build_analytic_game("bilinear", n_workers=2, dim=3, noise=0.0)
    state = Workers(game, [0], seed=0, batch_size=2).state_dict()
    with pytest.raises(ConfigError, match=r"checkpoint holds workers \[0\].*holds \[1\]"):
        Workers(game, [1], seed=0, batch_size=2).load_state_dict(state)


def test_eval_on_a_torchrun_run_names_its_per_rank_checkpoints(tmp_path, capsys):
    """eval joins a torchrun run's per-rank checkpoints (tests/test_dist_eval.py); a damaged
    one is named in one line."""
    run = tmp_path / "dist-run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "rank0-00000006.pt").write_bytes(b"x")
    assert main(["eval", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert "rank0-00000006.pt" in err and "\n" not in err


@pytest.mark.parametrize("argv,needle", [
    (["--topology", "ring", "--edges", "g.txt"], "topology.edges does not apply to topology"),
    (["--set", "topology.p=0.5"], "topology.p does not apply to topology 'ring'"),
    (["--set", "run.dist_backend=foo"], "unknown run.dist_backend 'foo'"),
    (["--lr", "inf"], "'optim.lr' must be a finite number"),
    (["--set", "game.gp_weight=.nan"], "'game.gp_weight' must be a finite number"),
    (["--set", "run.threads=100000"], "run.threads=100000 is more than"),
])
def test_meaningless_or_non_finite_options_are_one_line_errors(tmp_path, capsys, argv, needle):
    assert main(["train", "--out", str(tmp_path / "run"), "--no-progress", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err
    assert not (tmp_path / "run").exists()


def test_duplicate_yaml_keys_are_refused(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: 0.1\n  lr: 0.2\n")
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "'lr' appears twice" in err and str(path) in err and "\n" not in err


# --- the CLI's error path (issue 13's kinds that go through the config and the loop) -------

def test_resume_with_overwrite_is_refused(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "r"), "--resume", "--overwrite"]) == 2
    assert "--resume and --overwrite contradict" in capsys.readouterr().err


@pytest.mark.parametrize("below,needle", [
    ("file", "is an existing file"),      # --out is an existing file
    ("file/sub", "Not a directory"),      # --out below a file
    ("n" * 300, "File name too long"),    # a name too long
])
def test_output_path_problems_are_one_line(tmp_path, capsys, below, needle):
    (tmp_path / "file").write_text("not a folder")
    out = tmp_path / below
    argv = ["solve", "--iters", "2", "--out", str(out), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err and "Traceback" not in err


@pytest.mark.parametrize("algo,lr", [("dposg", "1e30"), ("dpoadam", "1e30"),
                                     ("cposg", "1e30"), ("dextragrad", "1e30")])
def test_divergence_is_exit_3_with_one_line_and_no_nan_checkpoint(tmp_path, capsys, algo, lr):
    out = tmp_path / "run"
    argv = ["solve", "--algo", algo, "--lr", lr, "--iters", "60", "--out", str(out),
            "--set", "run.checkpoint_every=10", "--set", "run.log_every=10", "--no-progress"]
    assert main(argv) == 3
    err = capsys.readouterr().err.strip()
    assert "training diverged at iteration" in err and "\n" not in err
    assert not (out / "summary.json").exists()
    from gossipgan.train.checkpoint import load_checkpoint

    if (out / "checkpoint.pt").exists():  # whatever was saved is finite
        params = load_checkpoint(out / "checkpoint.pt")["workers"]["params"]
        assert all(torch.isfinite(v).all() for v in params.values())
