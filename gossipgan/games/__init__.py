"""Min-max problems: the analytic games and the GAN objectives, all behind `Game`.

A game takes plain arguments (a dataset, sizes, a seed); building one from a run's config is
`gossipgan.train.build`'s job.
"""

from __future__ import annotations

from gossipgan.games.analytic import ANALYTIC_GAMES, build_analytic_game
from gossipgan.games.base import Game
from gossipgan.games.gan import LOSSES, GanGame

GAMES = ("gan", *ANALYTIC_GAMES)

__all__ = ["ANALYTIC_GAMES", "GAMES", "LOSSES", "Game", "GanGame", "build_analytic_game"]
