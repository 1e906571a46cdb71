"""Min-max problems: the analytic games and the GAN objectives, all behind `Game`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gossipgan.games.analytic import ANALYTIC_GAMES, build_analytic_game
from gossipgan.games.base import Game
from gossipgan.games.gan import LOSSES, GanGame

if TYPE_CHECKING:
    from gossipgan.train.config import Config

GAMES = ("gan", *ANALYTIC_GAMES)


def build_game(cfg: Config, n_workers: int) -> Game:
    """The game a run's config describes, split over `n_workers` shards."""
    from gossipgan.data import load_dataset
    from gossipgan.errors import check_choice

    g = cfg.game
    check_choice("game", g.name, GAMES)
    if g.name in ANALYTIC_GAMES:
        return build_analytic_game(g.name, n_workers=n_workers, dim=g.dim,
                                   samples_per_worker=g.samples_per_worker,
                                   heterogeneity=g.heterogeneity, noise=g.noise, seed=cfg.run.seed,
                                   device=cfg.run.device)
    d = cfg.data
    dataset = load_dataset(d.dataset, d.root, split="train", image_size=d.image_size,
                           seed=cfg.run.seed)
    return GanGame(dataset, n_workers, model=g.model, loss=g.loss, latent_dim=g.latent_dim,
                   width=g.width, gp_weight=g.gp_weight, scheme=d.shard, alpha=d.alpha,
                   batch_size=cfg.run.batch, seed=cfg.run.seed)


__all__ = ["ANALYTIC_GAMES", "GAMES", "LOSSES", "Game", "GanGame", "build_analytic_game",
           "build_game"]
