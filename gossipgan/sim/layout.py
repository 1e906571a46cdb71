"""The weight-major linear layout the simulator's vmapped forward runs in.

While `WeightMajorLinear` is active, F.linear(x, w, b) on a 2-D x runs as (b + w x^T)^T: the
same sums, but autograd then forms the weight gradient as g^T x, in w's own [out, in] layout.
Under vmap the plain form gives each worker's weight gradient as a transposed view, and laying
N of them out densely (which the optimizers need) was a separate copy of every weight gradient
(bench/sim_throughput.py's "sim vmap, plain" row measures the difference; BENCHMARKS.md). Only
in the vmapped forward: for one worker it is slower.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

try:  # private functorch API; without it every linear is weight-major (slower for WGAN-GP)
    from torch._C._functorch import is_gradtrackingtensor as _inside_grad_transform
except ImportError:  # pragma: no cover - depends on the torch build
    def _inside_grad_transform(t: Tensor) -> bool:
        return False


def _linear_args(input: Tensor, weight: Tensor, bias: Tensor | None = None
                 ) -> tuple[Tensor, Tensor, Tensor | None]:
    """F.linear's arguments, however they were passed."""
    return input, weight, bias


class WeightMajorLinear(TorchFunctionMode):
    """While active, F.linear(x, w, b) on a 2-D x runs as (b + w x^T)^T (see the module).

    Inside a torch.func.grad taken within the forward (WGAN-GP's penalty) F.linear stays
    plain: the outer gradient then differentiates that inner backward's g @ w, which gives
    the weight's contribution as the dense g^T u; in the weight-major form it comes out
    transposed, and summing it with the dense first-order part is a strided pass
    (bench/sim_throughput.py's 'sim vmap, wm inner' row).
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear:
            x, weight, bias = _linear_args(*args, **kwargs)
            if x.dim() == 2 and not _inside_grad_transform(x):
                out = weight @ x.mT
                if bias is not None:  # in place: the product is new, and its backward never
                    out.add_(bias[:, None])  # reads it, so a second [out, B] buffer is waste
                return out.mT
        return func(*args, **kwargs)
