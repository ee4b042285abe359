"""The harness's own parts that no other test would catch going wrong: the order of
the run (conftest.spread) and the ports a server is given (s3server.free_ports)."""

import socket
from pathlib import Path

from conftest import spread
from s3server import LOWEST_PORT, free_ports


class Item:
    def __init__(self, path, name, early=False):
        self.path, self.name, self.early = Path(path), name, early

    def get_closest_marker(self, name):
        return self.early if name == "early" else None

    def __repr__(self):
        return self.name


def stretches(order, workers):
    """The order cut as xdist's worksteal cuts it for its workers."""
    cut = []
    for n in range(workers):
        size = (len(order) - sum(map(len, cut))) // (workers - n)
        cut.append(order[sum(map(len, cut)):][:size])
    return cut


def test_the_run_deals_every_test_once_files_evenly_and_the_early_ones_first():
    items = [Item("test_faults.py", f"f{n}", early=n < 8) for n in range(40)] + \
        [Item("test_lfs.py", f"l{n}") for n in range(20)] + \
        [Item("test_units.py", f"u{n}", early=n == 0) for n in range(40)]
    order = list(items)
    spread(order, 4)
    assert sorted(map(repr, order)) == sorted(map(repr, items))
    for stretch in stretches(order, 4):
        early = [item for item in stretch if item.early]
        assert stretch[:len(early)] == early and len(early) in (2, 3)
        for path, count in (("test_faults.py", 40), ("test_lfs.py", 20),
                            ("test_units.py", 40)):
            assert abs(sum(item.path.name == path for item in stretch) - count / 4) <= 1


def test_more_early_tests_than_a_stretch_holds_are_all_still_run():
    items = [Item("test_a.py", f"a{n}", early=True) for n in range(9)] + \
        [Item("test_b.py", "b")]
    order = list(items)
    spread(order, 4)
    assert sorted(map(repr, order)) == sorted(map(repr, items))


def test_side_by_side_workers_draw_free_ports_from_their_own_stretches(monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "6")
    drawn = {}
    for worker in range(6):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{worker}")
        drawn[worker] = free_ports(5)
        assert len(set(drawn[worker])) == 5
        for port in drawn[worker]:
            assert LOWEST_PORT <= port and port + 10000 < 32768  # below outgoing ports
            for each in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", each))
    assert len(set().union(*drawn.values())) == 30
    assert max(drawn[0]) < min(drawn[1])
