"""GAN objectives as min-max games: each player's gradient of its OWN loss at the same point.

    nsgan    l_D = softplus(-D(x)) + softplus(D(G(z)))      l_G = softplus(-D(G(z)))
    hinge    l_D = relu(1 - D(x)) + relu(1 + D(G(z)))       l_G = -D(G(z))
    wgan-gp  l_D = D(G(z)) - D(x) + lambda (||grad D(x~)|| - 1)^2,  x~ = e x + (1-e) G(z)
             l_G = -D(G(z))

The generator is the "min" player (parameters "G.*"), the discriminator the "max" player
("D.*"). The operator is computed with torch.func on `functional_call`, a pure function of
one worker's parameters and batch (data x, latent z and, for WGAN-GP only, interpolation
weights e), so the simulator can vmap it over workers. `player_losses` gives the two losses
themselves, from one forward, for the simulator's faster path (vmap the forward, plain
autograd for the gradients). Each worker samples its minibatch with replacement from its own
shard using only its generator: the generator's state is the whole data position of a run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, grad

from gossipgan.data import Dataset, shard
from gossipgan.errors import ConfigError, check_choice
from gossipgan.games.base import Batch, Game, Params
from gossipgan.models import build_models

LOSSES = ("nsgan", "hinge", "wgan-gp")


def _split(params: Params) -> tuple[Params, Params]:
    g = {k[2:]: v for k, v in params.items() if k.startswith("G.")}
    d = {k[2:]: v for k, v in params.items() if k.startswith("D.")}
    return g, d


class GanGame(Game):
    def __init__(self, dataset: Dataset, n_workers: int, *, model: str = "dcgan",
                 loss: str = "nsgan", latent_dim: int = 32, width: int | None = None,
                 gp_weight: float = 10.0, scheme: str = "iid", alpha: float = 1.0,
                 batch_size: int = 1, seed: int = 0):
        self.dataset = dataset
        self.n_workers = n_workers
        self.loss = check_choice("loss", loss, LOSSES)
        self.latent_dim = latent_dim
        self.gp_weight = gp_weight
        self.model, self.width = model, width
        self.G, self.D = build_models(model, dataset.shape, latent_dim, width)
        self.shards = shard(dataset, n_workers, scheme=scheme, alpha=alpha, seed=seed)
        smallest = min(len(s) for s in self.shards)
        if batch_size > smallest:
            raise ConfigError(f"batch {batch_size} is larger than a worker's shard ({smallest} "
                              f"samples of {dataset.name} over {n_workers} workers); lower "
                              "run.batch or workers")
        self.shard_size = sum(len(s) for s in self.shards) / n_workers

    # --- Game interface -------------------------------------------------------------------
    def init_params(self, seed: int) -> Params:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            g, d = build_models(self.model, self.dataset.shape, self.latent_dim, self.width)
        out = {f"G.{k}": v.detach().clone() for k, v in g.named_parameters()}
        out.update({f"D.{k}": v.detach().clone() for k, v in d.named_parameters()})
        return out

    def player(self, name: str) -> str:
        return "min" if name.startswith("G.") else "max"

    def _batch(self, idx: Tensor, generator: torch.Generator) -> Batch:
        n = len(idx)
        batch = {"x": self.dataset.x[idx],
                 "z": torch.randn(n, self.latent_dim, generator=generator)}
        if self.loss == "wgan-gp":  # the penalty's interpolation weights; no other loss uses e
            batch["e"] = torch.rand(n, generator=generator)
        return batch

    def sample(self, worker: int, generator: torch.Generator, batch_size: int) -> Batch:
        s = self.shards[worker]
        return self._batch(s[torch.randint(len(s), (batch_size,), generator=generator)], generator)

    def large_batch(self, generator: torch.Generator, size: int) -> Batch:
        n = len(self.dataset)
        return self._batch(torch.randint(n, (size,), generator=generator), generator)

    def operator(self, params: Params, batch: Batch) -> Params:
        pg, pd = _split(params)
        # Each player's loss sees the other player's parameters as constants (detached), so
        # one backward pass of l_G + l_D yields (dl_G/dG, dl_D/dD) from a single forward.
        both = grad(lambda a, b: sum(self._losses(a, b, batch, frozen=True)), argnums=(0, 1))
        gg, gd = both(pg, pd)
        return {**{f"G.{k}": v for k, v in gg.items()}, **{f"D.{k}": v for k, v in gd.items()}}

    def player_losses(self, params: Params, batch: Batch) -> dict[str, Tensor]:
        # One critic pass on the fakes serves both losses: the caller takes dl_G/dG and
        # dl_D/dD in two backward passes, so neither loss's cross-gradient is ever formed.
        loss_g, loss_d = self._losses(*_split(params), batch)
        return {"min": loss_g, "max": loss_d}

    def losses(self, params: Params, batch: Batch) -> dict[str, Tensor]:
        loss_g, loss_d = self._losses(*_split(params), batch)
        return {"loss_g": loss_g.detach(), "loss_d": loss_d.detach()}

    # --- the objectives -------------------------------------------------------------------
    def _critic(self, pd: Params, x: Tensor) -> Tensor:
        return functional_call(self.D, pd, (x,))

    def _losses(self, pg: Params, pd: Params, batch: Batch, frozen: bool = False
                ) -> tuple[Tensor, Tensor]:
        """(l_G, l_D); with `frozen`, l_G does not depend on D's parameters nor l_D on G's.

        Frozen costs a third critic pass (on the fakes, once with D's parameters detached for
        l_G and once on detached fakes for l_D); without it l_G and l_D share that pass.
        """
        x, z = batch["x"], batch["z"]
        fake = functional_call(self.G, pg, (z,))
        fake_const = fake.detach()
        if frozen:
            g_fake = self._critic({k: v.detach() for k, v in pd.items()}, fake)
            d_fake = self._critic(pd, fake_const)
        else:
            g_fake = d_fake = self._critic(pd, fake)
        d_real = self._critic(pd, x)
        if self.loss == "nsgan":
            return F.softplus(-g_fake).mean(), (F.softplus(-d_real) + F.softplus(d_fake)).mean()
        if self.loss == "hinge":
            return -g_fake.mean(), (F.relu(1 - d_real) + F.relu(1 + d_fake)).mean()
        e = batch["e"].view(-1, *([1] * (x.dim() - 1)))
        # The penalty is D's term only: its path into G is cut in both modes.
        mix = e * x + (1 - e) * fake_const
        # Per-sample input gradient of the critic: D is applied sample-wise, so the gradient
        # of the sum w.r.t. the inputs holds each sample's own gradient.
        g = grad(lambda inp: self._critic(pd, inp).sum())(mix)
        penalty = (g.flatten(1).norm(dim=1) - 1).pow(2).mean()
        return -g_fake.mean(), d_fake.mean() - d_real.mean() + self.gp_weight * penalty

    # --- outputs --------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, params: Params, n: int, generator: torch.Generator) -> Tensor:
        pg, _ = _split(params)
        z = torch.randn(n, self.latent_dim, generator=generator).to(next(iter(pg.values())).device)
        return functional_call(self.G, pg, (z,))
