"""Network-condition emulation for the systems benchmark (DESIGN.md §7).

- `net.Network`: one network namespace per worker behind a hub namespace (veth pairs into a
  bridge), `tbf` on every link for bandwidth, the userspace TUN delay router (`router.py`)
  for one-way latency; removes everything it created, also on Ctrl-C and failure. Root only.
  `namespaces`: the `ip`/`tc` commands, stale namespaces (`remove_stale`), stopping processes.
- `alphabeta`: the α–β model that predicts each algorithm's communication time;
  `calibration`: α and β measured on the emulated link.
- `grid`: the benchmark grid and its driver (`launch`: starting and watching a condition's
  workers); `worker`: what each emulated worker runs; `peer`: decent-dp's neighbour exchange
  beside DistComm's; `report`: CSV, tables, plots.

Without root the fallback is DistComm's application-level per-hop delay (`run.delay_ms`) on
loopback, labelled as such in every output.
"""

from gossipgan.netem.alphabeta import AlphaBeta, predict
from gossipgan.netem.units import parse_delay, parse_rate

__all__ = ["AlphaBeta", "parse_delay", "parse_rate", "predict"]
