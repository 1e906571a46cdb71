"""Your own GAN on gossipgan: the same model code under torchrun and on the simulator.

    simultaneous_backward((netG, loss_g), (netD, loss_d))   each player's own gradient in .grad
    ModuleGame(netG, netD, data, n_workers, ...)              your modules as a simulator Game
    iterate_state_dict(opt, netG) / use_iterate(opt, ...)     x_bar (or x_k) for outputs

The optimizers themselves are `gossipgan.optim` (DPOAdam, ...); the communicators
`gossipgan.comm` (SimComm, DistComm, init_process_group). README "Your own GAN".
"""

from gossipgan.own.game import ModuleGame, nsgan_losses
from gossipgan.own.outputs import iterate_state_dict, use_iterate
from gossipgan.own.simultaneous import simultaneous_backward

__all__ = ["ModuleGame", "iterate_state_dict", "nsgan_losses", "simultaneous_backward",
           "use_iterate"]
