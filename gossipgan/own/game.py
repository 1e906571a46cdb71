"""Your own generator and discriminator modules as a `Game` for `gossipgan.sim.Workers`.

    game = ModuleGame(netG, netD, images, n_workers=4, latent_shape=(nz, 1, 1),
                      losses=my_losses, batch_size=64)
    workers = Workers(game, comm.workers, seed=0, batch_size=64)   # stacked: [4, ...]

The modules are templates: every worker's parameters and buffers are stacked on the worker
axis and the modules run through `torch.func.functional_call` on one worker's slice (vmap or a
loop, by Workers' rule). `losses(G, D, real, z) -> (loss_g, loss_d)` is the same function a
torchrun script calls with the real modules, so one model and loss code runs both ways.

Buffers (BatchNorm's running statistics) are per worker: each worker's forward updates its own
row in place, as each rank's module does under torchrun; they are not gossiped (training in
train mode never reads them). The output x_bar averages them (`gossipgan.own.outputs`).
x_0 is the modules' parameters as built (`init_params` ignores its seed): every worker starts
there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from gossipgan.data import Dataset, shard
from gossipgan.errors import ConfigError
from gossipgan.games.base import Batch, Game, Params

Losses = Callable[[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor], Tensor, Tensor],
                  tuple[Tensor, Tensor]]


def nsgan_losses(G: Callable[[Tensor], Tensor], D: Callable[[Tensor], Tensor], real: Tensor,
                 z: Tensor) -> tuple[Tensor, Tensor]:
    """Non-saturating GAN on logits: (softplus(-D(G(z))), softplus(-D(x)) + softplus(D(G(z))))."""
    fake = G(z)
    loss_d = F.softplus(-D(real)).mean() + F.softplus(D(fake.detach())).mean()
    return F.softplus(-D(fake)).mean(), loss_d


def _prefixed(prefix: str, named) -> Params:
    return {f"{prefix}{k}": v.detach().clone() for k, v in named}


class ModuleGame(Game):
    """A GAN game from two `nn.Module`s, a data tensor (or Dataset) and a losses function."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module, data: Tensor | Dataset,
                 n_workers: int, *, latent_shape: int | Sequence[int],
                 losses: Losses = nsgan_losses, scheme: str = "iid", alpha: float = 1.0,
                 seed: int = 0, batch_size: int = 1):
        if not (isinstance(generator, nn.Module) and isinstance(discriminator, nn.Module)):
            raise ConfigError("ModuleGame takes the generator and discriminator as nn.Modules")
        self.G, self.D, self.losses_fn = generator, discriminator, losses
        self.n_workers = n_workers
        self.latent_shape = (latent_shape,) if isinstance(latent_shape, int) \
            else tuple(latent_shape)
        self.dataset = data if isinstance(data, Dataset) else None
        self.x = data.x if isinstance(data, Dataset) else data
        if not isinstance(self.x, Tensor) or self.x.dim() < 2:
            raise ConfigError("ModuleGame's data must be a tensor [n, ...] or a Dataset")
        self.shards = shard(data if isinstance(data, Dataset) else len(self.x), n_workers,
                            scheme=scheme, alpha=alpha, seed=seed)
        smallest = min(len(s) for s in self.shards)
        if batch_size > smallest:
            raise ConfigError(f"batch {batch_size} is larger than a worker's shard ({smallest} "
                              f"samples over {n_workers} workers)")
        self.shard_size = sum(len(s) for s in self.shards) / n_workers
        self._names = set(self.init_params(0))

    # --- Game interface -------------------------------------------------------------------
    def init_params(self, seed: int) -> Params:
        return {**_prefixed("G.", self.G.named_parameters()),
                **_prefixed("D.", self.D.named_parameters())}

    def init_buffers(self) -> Params:
        return {**_prefixed("G.", self.G.named_buffers()),
                **_prefixed("D.", self.D.named_buffers())}

    def player(self, name: str) -> str:
        return "min" if name.startswith("G.") else "max"

    def _batch(self, idx: Tensor, generator: torch.Generator) -> Batch:
        z = torch.randn(len(idx), *self.latent_shape, generator=generator)
        return {"x": self.x[idx], "z": z}

    def sample(self, worker: int, generator: torch.Generator, batch_size: int) -> Batch:
        s = self.shards[worker]
        return self._batch(s[torch.randint(len(s), (batch_size,), generator=generator)],
                           generator)

    def large_batch(self, generator: torch.Generator, size: int) -> Batch:
        return self._batch(torch.randint(len(self.x), (size,), generator=generator), generator)

    def modules(self, state: Params) -> tuple[Callable[[Tensor], Tensor],
                                              Callable[[Tensor], Tensor]]:
        """G and D as functions of one worker's `state` (parameters, and buffers updated in
        place; a buffer missing from `state` is a fresh copy of the template's, so the
        template shared by all workers is never written)."""
        own = dict(state)
        for prefix, module in (("G.", self.G), ("D.", self.D)):
            for k, b in module.named_buffers():
                if prefix + k not in own:
                    own[prefix + k] = b.detach().clone()
        g = {k[2:]: v for k, v in own.items() if k.startswith("G.")}
        d = {k[2:]: v for k, v in own.items() if k.startswith("D.")}
        return (lambda inp: functional_call(self.G, g, (inp,)),
                lambda inp: functional_call(self.D, d, (inp,)))

    def player_losses(self, params: Params, batch: Batch) -> dict[str, Tensor]:
        loss_g, loss_d = self.losses_fn(*self.modules(params), batch["x"], batch["z"])
        return {"min": loss_g, "max": loss_d}

    def operator(self, params: Params, batch: Batch) -> Params:
        # Workers takes player_losses' road; this is T for one worker (evaluation).
        with torch.enable_grad():
            leaves = {k: v.detach().requires_grad_() for k, v in params.items()
                      if k in self._names}
            losses = self.player_losses({**params, **leaves}, batch)
            out: Params = {}
            for player in ("min", "max"):
                names = [k for k in leaves if self.player(k) == player]
                grads = torch.autograd.grad(losses[player], [leaves[k] for k in names],
                                            retain_graph=True, materialize_grads=True)
                out.update(zip(names, grads, strict=True))
        return out

    def losses(self, params: Params, batch: Batch) -> dict[str, Tensor]:
        loss_g, loss_d = self.losses_fn(*self.modules(params), batch["x"], batch["z"])
        return {"loss_g": loss_g.detach(), "loss_d": loss_d.detach()}

    @torch.no_grad()
    def generate(self, params: Params, n: int, generator: torch.Generator) -> Tensor:
        G, _ = self.modules(params)
        return G(torch.randn(n, *self.latent_shape, generator=generator))
