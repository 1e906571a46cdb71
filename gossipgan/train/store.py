"""Where a run's checkpoints live, and which one a resumed run loads.

Simulator: one file, `checkpoint.pt` (all workers are in it).
torch.distributed: every worker writes its own, `checkpoints/rank{r}-{step:08d}.pt`, keeping
the newest two. A worker killed while saving leaves the ranks disagreeing on the newest step;
on resume the ranks exchange the steps they hold and all load the newest step that every one
of them has.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from gossipgan.comm.base import Communicator
from gossipgan.errors import ConfigError
from gossipgan.train.checkpoint import save_checkpoint

KEEP = 2
log = logging.getLogger(__name__)


class CheckpointStore:
    def __init__(self, out: Path, comm: Communicator):
        self.out = Path(out)
        self.comm = comm
        self.sharded = comm.n_local != comm.n_workers
        self.rank = comm.workers[0]
        self._agreed: tuple[Path | None] | None = None  # resume_path's answer until a save

    def path_of(self, step: int) -> Path:
        """Where this process's checkpoint of `step` is (the simulator's single file)."""
        return self._path(step)

    def _path(self, step: int) -> Path:
        if not self.sharded:
            return self.out / "checkpoint.pt"
        return self.out / "checkpoints" / f"rank{self.rank}-{step:08d}.pt"

    def remove_stale_temporaries(self) -> int:
        """Delete this process's temporary files of saves that a kill interrupted (a save
        writes NAME.<random>.tmp, then renames it); returns how many."""
        pattern = (f"checkpoints/rank{self.rank}-*.pt.*.tmp" if self.sharded
                   else "checkpoint.pt.*.tmp")
        stale = list(self.out.glob(pattern))
        for f in stale:
            f.unlink(missing_ok=True)
        if stale:
            log.info("removed %d temporary file(s) of interrupted saves in %s", len(stale),
                     self.out)
        return len(stale)

    def steps(self) -> list[int]:
        """Steps this process holds a checkpoint of (the sim's single file: its own step unknown
        without reading it, reported as [-1])."""
        if not self.sharded:
            return [-1] if self._path(0).is_file() else []
        pattern = re.compile(rf"rank{self.rank}-(\d+)\.pt$")
        folder = self.out / "checkpoints"
        found = [int(m.group(1)) for f in folder.glob(f"rank{self.rank}-*.pt")
                 if (m := pattern.search(f.name))] if folder.is_dir() else []
        return sorted(found)

    def save(self, state: dict, step: int) -> Path:
        path = self._path(step)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(state, path)
        self._agreed = None
        if self.sharded:
            # Files of later steps are stale (a run restarted afresh, or resumed from an older
            # step than this rank had): left there, they would count as "newest" and get the
            # file just written pruned, or be resumed from later.
            steps = self.steps()
            older = [s for s in steps if s <= step]
            for old in [s for s in steps if s > step] + older[:-KEEP]:
                self._path(old).unlink(missing_ok=True)
        return path

    def resume_path(self) -> Path | None:
        """The checkpoint to resume from, agreed by every rank; None if some rank has none.

        A collective the first time (every rank must call it); asked again before a save, it
        answers from memory on every rank alike.
        """
        if self._agreed is None:
            self._agreed = (self._agree(),)
        return self._agreed[0]

    def _agree(self) -> Path | None:
        mine = self.steps()
        everyone = self.comm.gather_objects(mine)
        common = set.intersection(*map(set, everyone))
        if not common:
            return None
        step = max(common)
        if self.comm.is_main and step >= 0:
            newest = {max(s) for s in everyone}
            if newest != {step}:
                log.warning("ranks disagree on the newest checkpoint (newest per rank: %s): "
                            "resuming from step %d, the newest that every rank holds",
                            [max(s) for s in everyone], step)
            else:
                log.info("resuming from step %d", step)
        return self._path(step)

    def check_world(self) -> None:
        """Checkpoints written by more ranks than this run has mean a different world size."""
        if not self.sharded:
            return
        folder = self.out / "checkpoints"
        ranks = {int(m.group(1)) for f in folder.glob("rank*-*.pt")
                 if (m := re.match(r"rank(\d+)-", f.name))} if folder.is_dir() else set()
        if ranks and max(ranks) >= self.comm.n_workers:
            raise ConfigError(f"{folder} holds checkpoints of {max(ranks) + 1} workers but this "
                              f"run has {self.comm.n_workers}: resume with the same number of "
                              "workers")
