"""Draw docs/default_samples.png: real images beside samples of a run's average model x_bar
(and of its generator's EMA, if the run kept one), with the function that draws the run's own
samples/*.png (gossipgan.train.samples.sample_figure).

    python scripts/readme_figure.py runs/default     # after `make run`
"""

import sys
from pathlib import Path

import torch

from gossipgan.train.build import build_run
from gossipgan.train.checkpoint import load_checkpoint
from gossipgan.train.config import Config
from gossipgan.train.evaluate import REAL_SAMPLES
from gossipgan.train.samples import save_samples


def main(run_dir: Path, out: Path = Path("docs/default_samples.png")) -> None:
    state = load_checkpoint(run_dir / "checkpoint.pt")
    run = build_run(Config.from_dict(state["config"]))
    run.workers.load_state_dict(state["workers"])
    run.optimizer.load_state_dict(state["optimizer"])
    x_bar = run.evaluator.x_bar()
    models = [("x̄", x_bar)]
    if run.ema is not None:
        run.ema.load_state_dict(state["ema"])
        models.append((f"x̄ EMA {run.ema.decay:g}", run.evaluator.ema_x_bar(x_bar)))
    panels = [("real", run.game.dataset.x[:REAL_SAMPLES])]
    for name, params in models:  # the same latent draws for each model
        panels.append((name, run.game.generate(params, 64, torch.Generator().manual_seed(0))))
    out.parent.mkdir(exist_ok=True)
    save_samples(panels, out, f"{run.evaluator.title}, iteration {state['iteration']}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/default"))
