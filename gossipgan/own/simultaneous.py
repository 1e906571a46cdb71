"""The simultaneous step for your own GAN: each player's gradient of its OWN loss, both at
the same point, in `.grad`; then one `optimizer.step()` moves both players and gossips once.

Why a helper and not `loss_d.backward(); loss_g.backward()`: `.backward()` accumulates into
every parameter its loss reaches, and the generator's loss reaches the discriminator (through
D(G(z))), so D's `.grad` would hold dl_D/dD + dl_G/dD: a different game, with no warning.
`torch.autograd.grad` of each loss with respect to its own player's parameters only is the
operator T = (dl_G/dG, dl_D/dD) of DESIGN.md §1.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from gossipgan.errors import ConfigError

Player = tuple[nn.Module | Iterable[Tensor], Tensor]


def _params(owner: nn.Module | Iterable[Tensor]) -> list[Tensor]:
    params = owner.parameters() if isinstance(owner, nn.Module) else owner
    return [p for p in params if p.requires_grad]


def simultaneous_backward(*players: Player) -> tuple[Tensor, ...]:
    """Set every player's `.grad` to the gradient of its own loss with respect to its own
    parameters only: `simultaneous_backward((netG, loss_g), (netD, loss_d))`.

    Each player is (module or iterable of parameters, scalar loss). Gradients replace `.grad`
    (no `zero_grad` needed); a parameter its loss does not reach gets zeros. Returns the
    losses, detached, for logging. Use it inside the closure of `optimizer.step(closure)` or
    just before `optimizer.step()`: both losses must be computed at the same point, before
    any step.
    """
    if not players:
        raise ConfigError("simultaneous_backward needs at least one (module, loss) pair")
    owners: dict[int, int] = {}
    split = []
    for j, player in enumerate(players):
        if not (isinstance(player, tuple) and len(player) == 2):
            raise ConfigError(f"player {j} must be a (module, loss) pair, got "
                              f"{type(player).__name__}")
        owner, loss = player
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            shape = list(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
            raise ConfigError(f"player {j}'s loss must be a scalar tensor, got {shape}")
        params = _params(owner)
        for p in params:
            if owners.setdefault(id(p), j) != j:
                raise ConfigError(f"a parameter of shape {list(p.shape)} belongs to players "
                                  f"{owners[id(p)]} and {j}: each player owns its parameters")
        split.append((params, loss))
    last = len(split) - 1
    with torch.enable_grad():
        for j, (params, loss) in enumerate(split):
            if not params:
                continue
            if not loss.requires_grad:
                raise ConfigError(f"player {j}'s loss does not depend on any parameter "
                                  "(computed under torch.no_grad?)")
            # retain_graph: the players' losses share the forward (G(z) feeds both)
            grads = torch.autograd.grad(loss.reshape(()), params, retain_graph=j < last,
                                        allow_unused=True, materialize_grads=True)
            for p, g in zip(params, grads, strict=True):
                p.grad = g.detach()
    return tuple(loss.detach() for _, loss in split)
