"""Min-max problems: the analytic games and the GAN objectives, all behind `Game`."""

from gossipgan.games.base import Game

__all__ = ["Game"]
