"""Draw docs/default_samples.png: real digits beside samples of a run's average model x_bar.

    python scripts/readme_figure.py runs/default     # after `make run`
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from gossipgan.train.build import build_run  # noqa: E402
from gossipgan.train.checkpoint import load_checkpoint  # noqa: E402
from gossipgan.train.config import Config  # noqa: E402
from gossipgan.train.samples import image_grid  # noqa: E402


def main(run_dir: Path, out: Path = Path("docs/default_samples.png")) -> None:
    state = load_checkpoint(run_dir / "checkpoint.pt")
    run = build_run(Config.from_dict(state["config"]))
    run.workers.load_state_dict(state["workers"])
    run.optimizer.load_state_dict(state["optimizer"])
    fake = run.game.generate(run.evaluator.x_bar(), 64, torch.Generator().manual_seed(0))
    real = run.game.dataset.x[:64]
    fig, axes = plt.subplots(1, 2, figsize=(8, 4.3))
    for ax, images, title in ((axes[0], real, "real digits (8×8)"),
                              (axes[1], fake, f"x̄ after {state['iteration']} iterations "
                               f"({run.cfg.optim.algo}, {run.topology.n_workers} workers)")):
        ax.imshow(image_grid(images).squeeze(-1).numpy(), cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    out.parent.mkdir(exist_ok=True)
    fig.savefig(out, dpi=100)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/default"))
