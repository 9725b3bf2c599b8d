"""A client may search a list's archive so often a minute ([web] searches_per_minute):
one client cannot keep the store busy with searches for everyone else."""

from __future__ import annotations

from mailhub.web.limits import MAX_CLIENTS, Window


def test_a_window_counts_each_clients_requests():
    w = Window(3, 60.0)
    assert [w.allow("a", t) for t in (0.0, 1.0, 2.0, 3.0)] == [True, True, True, False]
    assert w.allow("b", 3.0)  # another client is counted apart
    assert not w.allow("a", 59.9)  # a refused request is not counted, the others still are
    assert w.allow("a", 60.5)  # the first has left the window
    assert not w.allow("a", 60.6)


def test_no_limit_and_a_bounded_memory():
    assert all(Window(0, 60.0).allow("a", float(t)) for t in range(1000))
    w = Window(1, 60.0)
    for n in range(MAX_CLIENTS + 5):
        w.allow(f"10.0.{n // 256}.{n % 256}", 0.0)
    assert len(w._seen) == MAX_CLIENTS
    assert w.allow("10.0.0.0", 1.0)  # the longest unseen was forgotten first
