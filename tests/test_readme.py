"""The README's examples run as written (shortened where they would train for minutes).

- the Python example, executed with its iteration count cut down;
- every `gossipgan train|solve|topology|config` example line in a bash block: parsed by the
  real CLI parser, its config built and validated, and the train/solve ones run for two
  iterations (quality metrics, samples and plots off) into a temporary folder.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from gossipgan.cli import build_parser, main
from gossipgan.cli.common import config_from_args

README = Path(__file__).resolve().parents[1] / "README.md"
SHORT = ["--iters", "2", "--no-progress", "--set", "run.eval_every=2", "--set",
         "run.log_every=1", "--set", "run.quality_every=0", "--set", "run.eval_batch=64"]


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def _cli_examples() -> list[list[str]]:
    """Concrete example commands (lines with [optional] or PLACEHOLDER arguments are usage
    summaries, not commands)."""
    out = []
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#")[0].strip()
            words = shlex.split(line) if line else []
            starts = [i for i, w in enumerate(words) if w.split("/")[-1] == "gossipgan"]
            if not starts:
                continue
            words = words[starts[0] + 1:]
            if words[0] in ("bench", "eval", "compare") or "[" in line or "RUN_" in line:
                continue
            out.append(words)
    return out


EXAMPLES = _cli_examples()


def test_the_readme_has_cli_examples():
    commands = {w[0] for w in EXAMPLES}
    assert {"train", "solve", "topology"} <= commands, EXAMPLES


@pytest.mark.parametrize("argv", EXAMPLES, ids=[" ".join(a)[:60] for a in EXAMPLES])
def test_cli_example_parses_and_validates(argv):
    args = build_parser().parse_args(argv)
    if argv[0] in ("train", "solve"):
        if args.optim__algo == "all":
            args.optim__algo = None
        config_from_args(args)


def _no_pictures(monkeypatch):
    import gossipgan.train.evaluate as evaluate
    import gossipgan.train.loop as loop

    monkeypatch.setattr(loop, "plot_run", lambda out: None)
    monkeypatch.setattr(evaluate, "save_samples", lambda *a, **k: None)
    import gossipgan.cli.solve as solve

    monkeypatch.setattr(solve, "plot_comparison", lambda *a, **k: Path("comparison.png"))


@pytest.mark.slow
@pytest.mark.parametrize("argv", [a for a in EXAMPLES if a[0] in ("train", "solve")
                                  and "dist" not in a],
                         ids=lambda a: " ".join(a)[:60])
def test_cli_example_runs_shortened(argv, tmp_path, monkeypatch):
    _no_pictures(monkeypatch)
    argv = list(argv)
    if "--out" in argv:
        i = argv.index("--out")
        argv[i + 1] = str(tmp_path / Path(argv[i + 1]).name)
    else:
        argv += ["--out", str(tmp_path / "run")]
    for flag in ("--iters",):  # the shortened count replaces the example's
        if flag in argv:
            i = argv.index(flag)
            del argv[i:i + 2]
    assert main([*argv, *SHORT]) == 0


def test_topology_examples_run(tmp_path, capsys):
    for argv in [a for a in EXAMPLES if a[0] in ("topology", "config")]:
        assert main(argv) == 0, argv


def test_the_python_example_runs(capsys):
    (code,) = [b for b in _blocks("python") if "import" in b][:1]
    code = code.replace("range(3000)", "range(300)")
    assert "range(300)" in code
    exec(compile(code, str(README), "exec"), {})
    value = float(capsys.readouterr().out.split("=")[-1])
    assert value < 1.0  # DPOSG on the heterogeneous bilinear game: 300 steps shrink ||T||^2
