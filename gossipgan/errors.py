"""The exception types a user sees.

`ConfigError` (a user mistake) subclasses `ValueError`, so library users catch it like torch's
own validation errors; the CLI turns it into one line on stderr and exit status 2 instead of a
traceback. Messages name what was wrong, the value, and what is allowed. `Diverged` (the
iterates left the finite numbers) is exit status 3, `PeerFailure` (a peer stopped answering
or went away under torch.distributed) exit status 4.
"""


class ConfigError(ValueError):
    """A user mistake: bad argument, bad file, bad combination of options."""


def check_choice(what: str, value: str, allowed) -> str:
    """Return `value` if it is one of `allowed`, else raise a ConfigError listing them."""
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(f"unknown {what} {value!r}; known: {', '.join(map(str, allowed))}")
    return value


class Diverged(RuntimeError):
    """Training produced a non-finite loss, gradient or parameter; the message names the
    iteration, the player and the last finite checkpoint."""

    exit_code = 3


class PeerFailure(RuntimeError):
    """A neighbour exchange or collective timed out (a stalled peer) or lost its connection
    (a dead peer); the message names the peer(s) this rank waited for."""

    exit_code = 4
