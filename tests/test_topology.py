"""Gossip topologies: every builder's matrix, the exact spectral facts of DESIGN.md §2, the
time-varying schedule, user graphs, error messages and the `topology` CLI subcommand."""

from __future__ import annotations

import argparse
import json
import math

import networkx as nx
import numpy as np
import pytest

from gossipgan.cli.topology_cmd import add_parser, run
from gossipgan.errors import ConfigError
from gossipgan.topology import (
    TOPOLOGIES,
    Topology,
    build,
    complete,
    erdos_renyi,
    exact_average_rounds,
    exponential,
    from_edge_list,
    from_networkx,
    hypercube,
    one_peer_exponential,
    ring,
    star,
    symmetric_exponential,
    torus,
    validate,
)


def _log2c(n: int) -> int:
    return math.ceil(math.log2(n))


def _torus_nbrs(rows: int, cols: int):
    def nbrs(i: int, r: int) -> set[int]:
        y, x = divmod(i, cols)
        steps = ((1, 0), (-1, 0), (0, 1), (0, -1))
        return {((y + dy) % rows) * cols + (x + dx) % cols for dy, dx in steps}

    return nbrs


# Expected in-neighbour sets of worker i in round r, written independently of the builders'
# own adjacency code: name -> (builder, rule(n) -> (i, r) -> set, sizes).
RULES = {
    "ring": (ring, lambda n: lambda i, r: {(i + 1) % n, (i - 1) % n}, (2, 3, 4, 7, 10)),
    "hypercube": (
        hypercube,
        lambda n: lambda i, r: {i ^ (1 << b) for b in range(_log2c(n))},
        (2, 8, 16),
    ),
    "exponential": (
        exponential,
        lambda n: lambda i, r: {(i - 2**j) % n for j in range(_log2c(n))},
        (2, 3, 5, 6, 8, 12, 16),
    ),
    "symmetric_exponential": (
        symmetric_exponential,
        lambda n: lambda i, r: {(i + s * 2**j) % n for j in range(_log2c(n)) for s in (1, -1)},
        (3, 4, 6, 16),
    ),
    "one_peer_exponential": (
        one_peer_exponential,
        lambda n: lambda i, r: {(i - 2 ** (r % _log2c(n))) % n},
        (2, 3, 6, 8, 12),
    ),
    "complete": (complete, lambda n: lambda i, r: set(range(n)), (2, 5)),
    "star": (star, lambda n: lambda i, r: set(range(n)) if i == 0 else {0}, (2, 6)),
    "torus": (torus, lambda n: _torus_nbrs(*{9: (3, 3), 12: (3, 4), 16: (4, 4)}[n]), (9, 12, 16)),
}
CASES = [(f"{name}{n}", make, rule(n), n) for name, (make, rule, ns) in RULES.items() for n in ns]


@pytest.mark.parametrize("label,make,rule,n", CASES, ids=[c[0] for c in CASES])
def test_every_builder_is_doubly_stochastic_on_its_graph(label, make, rule, n):
    topo = make(n)
    assert topo.n_workers == n

    def expected(i: int, r: int) -> set[int]:
        return rule(i, r) - {i}

    for r in range(topo.period):
        w = topo.matrix(r)
        assert w.dtype == np.float64 and (w >= 0).all()
        np.testing.assert_allclose(w.sum(axis=0), 1.0, atol=1e-12)
        np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
        for i in range(n):
            assert {j for j in range(n) if j != i and w[i, j] > 0} == expected(i, r)
            assert {j for j, _ in topo.in_neighbors(i, r)} == expected(i, r)
            assert w[i, i] > 0
    assert topo.max_degree == max(len(expected(i, r)) for i in range(n) for r in range(topo.period))


def test_erdos_renyi_is_seeded_connected_and_retries_the_next_seed():
    a, b = erdos_renyi(12, p=0.3, seed=5), erdos_renyi(12, p=0.3, seed=5)
    np.testing.assert_array_equal(a.matrix(0), b.matrix(0))
    assert not np.array_equal(a.matrix(0), erdos_renyi(12, p=0.3, seed=6).matrix(0))
    w = a.matrix(0)
    np.testing.assert_allclose(w, w.T)
    assert nx.is_connected(nx.from_numpy_array((w > 0).astype(int)))
    # n=6, p=0.3: seeds 0 and 1 draw disconnected graphs, so seed 0 lands on seed 2's graph.
    retried = erdos_renyi(6, p=0.3, seed=0)
    assert "seed=2" in retried.description
    np.testing.assert_array_equal(retried.matrix(0), erdos_renyi(6, p=0.3, seed=2).matrix(0))


@pytest.mark.parametrize("n", [3, 4, 5, 6, 8, 11, 16, 32])
def test_ring_spectral_gap_formula(n):
    assert ring(n).spectral_gap() == pytest.approx(4 / 3 * math.sin(math.pi / n) ** 2, abs=1e-12)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6])
def test_hypercube_spectral_gap_formula(k):
    assert hypercube(2**k).spectral_gap() == pytest.approx(2 / (1 + k), abs=1e-12)


@pytest.mark.parametrize("n", [4, 6, 8, 10, 12, 16, 20, 32, 64])
def test_static_exponential_rho_even_n(n):
    topo = exponential(n)
    assert topo.rho() == pytest.approx(1 - 2 / (1 + _log2c(n)), abs=1e-12)
    assert not np.allclose(topo.matrix(0), topo.matrix(0).T)  # doubly stochastic, not symmetric


def test_named_rho_values():
    assert exponential(16).rho() == pytest.approx(0.6, abs=1e-12)
    assert symmetric_exponential(16).rho() == pytest.approx(0.5, abs=1e-12)
    assert complete(7).rho() == pytest.approx(0.0, abs=1e-12)
    assert complete(7).spectral_gap() == pytest.approx(1.0, abs=1e-12)
    assert star(5).rho() == pytest.approx(1 - 1 / 5, abs=1e-12)  # Metropolis star: 1 - 1/n


@pytest.mark.parametrize("n", [2, 4, 8, 16, 32])
def test_one_peer_exponential_is_exact_for_powers_of_two(n):
    topo = one_peer_exponential(n)
    k = int(math.log2(n))
    assert topo.period == k and topo.time_varying == (k > 1)
    np.testing.assert_allclose(topo.mixing_matrix(k), np.full((n, n), 1 / n), atol=1e-15)
    assert topo.rho() == pytest.approx(0.0, abs=1e-12)
    assert exact_average_rounds(topo) == k == topo.exact_average_rounds()
    # one round short, each worker holds the average of exactly half the workers
    np.testing.assert_allclose(np.abs(topo.mixing_matrix(k - 1) - 1 / n), 1 / n, atol=1e-15)


@pytest.mark.parametrize("n", [3, 6, 12, 17])
def test_one_peer_exponential_is_not_exact_otherwise(n):
    topo = one_peer_exponential(n)
    assert np.abs(topo.mixing_matrix(topo.period) - 1 / n).max() > 1e-3
    assert 0 < topo.rho() < 1
    assert exact_average_rounds(topo) is None


@pytest.mark.parametrize(
    "topo,expected",
    [(complete(5), 1), (ring(2), 1), (ring(8), None), (exponential(16), None), (star(4), None)],
)
def test_exact_average_rounds_static(topo, expected):
    assert exact_average_rounds(topo) == expected


def test_mixing_matrix_is_the_product_in_round_order():
    # ring, star and exponential matrices do not commute, so a wrong order gives another product
    topo = Topology("custom", (ring(5).matrix(0), star(5).matrix(0), exponential(5).matrix(0)))
    w = [topo.matrix(r) for r in range(5)]
    assert topo.time_varying and topo.period == 3
    np.testing.assert_array_equal(w[4], w[1])
    assert not np.allclose(w[1] @ w[0], w[0] @ w[1])
    np.testing.assert_allclose(topo.mixing_matrix(3, start_round=1), w[3] @ w[2] @ w[1])
    np.testing.assert_array_equal(topo.mixing_matrix(0, start_round=2), np.eye(5))
    x0 = np.arange(5.0) ** 2
    x = x0
    for r in range(2, 6):
        x = topo.matrix(r) @ x
    np.testing.assert_allclose(topo.mixing_matrix(4, start_round=2) @ x0, x)
    np.testing.assert_allclose(topo.rho(), np.linalg.norm(w[2] @ w[1] @ w[0] - 1 / 5, 2))
    w5 = ring(5).matrix(0)
    np.testing.assert_allclose(ring(5).mixing_matrix(3), w5 @ w5 @ w5)


@pytest.mark.parametrize("topo", [ring(10), torus(16), exponential(12), hypercube(8)])
def test_rounds_to_is_the_smallest_t_for_static_graphs(topo):
    t, rho = topo.rounds_to(1e-3), topo.rho()
    assert rho**t <= 1e-3 < rho ** (t - 1)
    assert np.linalg.norm(topo.mixing_matrix(t) - 1 / topo.n_workers, 2) <= 1e-3 + 1e-12
    assert topo.rounds_to(1e-6) > t


@pytest.mark.parametrize("n,expected", [(16, 4), (8, 3), (6, None)])
def test_rounds_to_time_varying_uses_the_product(n, expected):
    topo = one_peer_exponential(n)
    t = topo.rounds_to(1e-3)
    if expected is not None:
        assert t == expected
    dev = [np.linalg.norm(topo.mixing_matrix(s) - 1 / n, 2) for s in (t - 1, t)]
    assert dev[1] <= 1e-3 < dev[0]


def test_rounds_to_complete_and_never():
    assert complete(4).rounds_to() == 1
    ring_ok = Topology("identity", (np.eye(4),))  # no mixing at all: rho = 1
    assert ring_ok.rounds_to() is None
    assert ring_ok.exact_average_rounds() is None


def test_neighbours_weights_and_edges_of_a_directed_graph():
    topo = exponential(8)  # i receives from i-1, i-2, i-4 with weight 1/4 each
    assert topo.in_neighbors(0) == [(4, 0.25), (6, 0.25), (7, 0.25)]
    assert topo.out_neighbors(0) == [(1, 0.25), (2, 0.25), (4, 0.25)]
    assert topo.self_weight(3) == 0.25
    assert topo.directed
    edges = topo.edges()
    assert len(edges) == 24 and (0, 1) in edges and (1, 0) not in edges  # (sender, receiver)
    op = one_peer_exponential(8)
    assert op.out_neighbors(3, round_index=1) == [(5, 0.5)]
    assert op.in_neighbors(3, round_index=5) == [(7, 0.5)]  # round 5 = round 2: offset 4
    assert op.edges(0) == sorted((i, (i + 1) % 8) for i in range(8))  # directed: i -> i+1
    assert op.edges(2) == [(0, 4), (1, 5), (2, 6), (3, 7)]  # offset 4 = -4: undirected


def test_edges_of_an_undirected_graph():
    topo = ring(6, self_weight=0.5)
    assert topo.edges() == [(0, 1), (0, 5), (1, 2), (2, 3), (3, 4), (4, 5)]
    assert not topo.directed
    assert topo.self_weight(2) == 0.5 and topo.in_neighbors(2) == [(1, 0.25), (3, 0.25)]


def test_topology_is_immutable_and_validated():
    topo = ring(5)
    with pytest.raises(ValueError):
        topo.matrix(0)[0, 0] = 1.0
    with pytest.raises(ConfigError, match="row sums"):
        Topology("bad", (np.full((3, 3), 0.5),))
    with pytest.raises(ConfigError, match="at least one"):
        Topology("empty", ())


def test_networkx_and_edge_list_use_metropolis_weights(tmp_path):
    np.testing.assert_allclose(from_networkx(nx.cycle_graph(7)).matrix(0), ring(7).matrix(0))
    g = nx.Graph([("a", "c"), ("c", "b")])  # sorted relabelling: a=0, b=1, c=2 (the centre)
    w = from_networkx(g).matrix(0)
    np.testing.assert_allclose(w[2], [1 / 3, 1 / 3, 1 / 3])
    np.testing.assert_allclose(w[0], [2 / 3, 0, 1 / 3])
    f = tmp_path / "graph.txt"
    f.write_text("# a path 10 - 20 - 30 plus a chord\n\n30 20  # trailing comment\n10 20\n10 20\n")
    topo = from_edge_list(f)
    third = 1 / 3
    expected = [[2 * third, third, 0], [third, third, third], [0, third, 2 * third]]
    np.testing.assert_allclose(topo.matrix(0), expected)
    assert build("file", None, path=f).n_workers == 3
    np.testing.assert_array_equal(build("file", 3, path=str(f)).matrix(0), topo.matrix(0))
    np.testing.assert_allclose(star(5).matrix(0), from_networkx(nx.star_graph(4)).matrix(0))


def test_build_by_name_matches_the_builders():
    assert set(TOPOLOGIES) == {*RULES, "erdos_renyi", "file"}
    for name, n in (("ring", 7), ("torus", 12), ("star", 4), ("one_peer_exponential", 6)):
        ours, theirs = build(name, n), RULES[name][0](n)
        assert ours.period == theirs.period
        for r in range(ours.period):
            np.testing.assert_array_equal(ours.matrix(r), theirs.matrix(r))
    np.testing.assert_array_equal(
        build("ring", 8, self_weight=0.5).matrix(0), ring(8, 0.5).matrix(0)
    )
    assert build("one-peer-exponential", 8).period == 3
    er = build("erdos_renyi", 9, p=0.5, seed=3)
    np.testing.assert_array_equal(er.matrix(0), erdos_renyi(9, 0.5, 3).matrix(0))


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


ERRORS = [
    ("hypercube12", lambda p: hypercube(12), ["power-of-two", "12"]),
    ("torus_prime", lambda p: torus(7), ["torus", "rows, cols >= 3", "got 7"]),
    ("torus8", lambda p: torus(8), ["got 8"]),
    ("ring1", lambda p: ring(1), ["ring", ">= 2", "got 1"]),
    ("star0", lambda p: star(0), ["star", ">= 2"]),
    ("exp_float", lambda p: exponential(4.0), ["integer"]),
    (
        "ring_sw0_even",
        lambda p: ring(8, self_weight=0),
        ["eigenvalue -1", "(8)", "self_weight > 0"],
    ),
    ("ring_sw_range", lambda p: ring(5, self_weight=1.0), ["self_weight", "[0, 1)"]),
    ("er_p", lambda p: erdos_renyi(5, p=0.0), ["p", "(0, 1]"]),
    (
        "er_never",
        lambda p: erdos_renyi(30, p=0.01, max_tries=3),
        ["no connected", "seeds 0..2", "raise p"],
    ),
    (
        "unknown",
        lambda p: build("mesh", 4),
        ["unknown topology 'mesh'", "ring", "one_peer_exponential"],
    ),
    (
        "bad_option",
        lambda p: build("torus", 9, self_weight=0.5),
        ["'torus'", "self_weight", "no options"],
    ),
    ("bad_option2", lambda p: build("ring", 9, p=0.5), ["option 'p'", "self_weight"]),
    ("no_workers", lambda p: build("ring", None), ["needs a number of workers"]),
    ("file_no_path", lambda p: build("file", 4), ["edge-list path"]),
    (
        "file_wrong_n",
        lambda p: build("file", 5, path=_write(p, "e.txt", "0 1\n1 2\n")),
        ["3 nodes", "5 workers"],
    ),
    (
        "disconnected",
        lambda p: from_networkx(nx.Graph([(0, 1), (2, 3), (4, 5)])),
        ["3 connected components"],
    ),
    ("one_node", lambda p: from_networkx(nx.path_graph(1)), ["at least 2 nodes", "got 1"]),
    (
        "malformed",
        lambda p: from_edge_list(_write(p, "m.txt", "0 1\n# ok\n1 x\n")),
        ["m.txt:3", "'1 x'"],
    ),
    ("three_fields", lambda p: from_edge_list(_write(p, "t.txt", "\n0 1 2\n")), ["t.txt:2"]),
    ("empty_file", lambda p: from_edge_list(_write(p, "z.txt", "# nothing\n")), ["no edges"]),
    ("missing_file", lambda p: from_edge_list(p / "absent.txt"), ["cannot read", "absent.txt"]),
    (
        "file_disconnected",
        lambda p: from_edge_list(_write(p, "d.txt", "0 1\n2 3\n")),
        ["2 connected components", "d.txt"],
    ),
    ("factor", lambda p: ring(5).rounds_to(0.0), ["(0, 1)"]),
    ("factor_big", lambda p: ring(5).rounds_to(2.0), ["(0, 1)"]),
    ("rounds", lambda p: ring(5).mixing_matrix(-1), [">= 0", "-1"]),
    ("worker", lambda p: ring(5).in_neighbors(5), ["0..4", "got 5"]),
    ("not_stochastic", lambda p: validate(np.array([[0.5, 0.6], [0.5, 0.4]])), ["row sums"]),
    ("negative", lambda p: validate(np.array([[1.5, -0.5], [-0.5, 1.5]])), ["non-negative"]),
    (
        "off_graph",
        lambda p: validate(
            np.full((3, 3), 1 / 3), np.eye(3, k=1, dtype=bool) | np.eye(3, k=-1, dtype=bool)
        ),
        ["(0, 2)", "not an edge"],
    ),
    ("not_square", lambda p: validate(np.ones((2, 3)) / 3), ["square", "(2, 3)"]),
]


@pytest.mark.parametrize("label,call,fragments", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_name_the_value_and_the_rule(tmp_path, label, call, fragments):
    with pytest.raises(ConfigError) as info:
        call(tmp_path)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def _cli(argv):
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    return run(parser.parse_args(["topology", *argv]))


def test_cli_json_has_exactly_the_documented_keys(capsys):
    assert _cli(["exponential", "--workers", "16", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    keys = [
        "name",
        "workers",
        "max_degree",
        "rho",
        "spectral_gap",
        "rounds_to_1e-3",
        "time_varying",
    ]
    assert list(facts) == keys
    assert facts["name"] == "exponential" and facts["workers"] == 16 and facts["max_degree"] == 4
    assert facts["rho"] == pytest.approx(0.6) and facts["spectral_gap"] == pytest.approx(0.4)
    assert facts["rounds_to_1e-3"] == exponential(16).rounds_to(1e-3)
    assert facts["time_varying"] is False
    assert _cli(["one_peer_exponential", "--workers", "8", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["time_varying"] is True and facts["rounds_to_1e-3"] == 3


def test_cli_text_options_and_edge_file(capsys, tmp_path):
    assert _cli(["ring", "--workers", "8", "--self-weight", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "workers         8" in out and "max degree      2" in out
    assert f"{ring(8, 0.5).rho():.6g}" in out and "time varying    no" in out
    edges = _write(tmp_path, "g.txt", "0 1\n1 2\n2 0\n2 3\n")
    assert _cli(["file", "--edges", str(edges), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["workers"] == 4
    with pytest.raises(ConfigError, match="self_weight"):
        _cli(["star", "--workers", "5", "--self-weight", "0.2"])
    with pytest.raises(ConfigError, match="power-of-two"):
        _cli(["hypercube", "--workers", "6"])


PLOTS = [
    ["torus", "--workers", "12"],
    ["exponential", "--workers", "8"],
    ["erdos_renyi", "--workers", "10", "--p", "0.4", "--seed", "1"],
]


@pytest.mark.parametrize("argv", PLOTS, ids=[a[0] for a in PLOTS])
def test_cli_plot_writes_a_png(tmp_path, capsys, argv):
    out = tmp_path / "graph.png"
    assert _cli([*argv, "--plot", str(out), "--json"]) == 0
    json.loads(capsys.readouterr().out)  # still exactly one JSON object on stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
    with pytest.raises(ConfigError, match="does not exist"):
        _cli([*argv, "--plot", str(tmp_path / "missing" / "g.png")])
