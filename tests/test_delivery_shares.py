"""How delivery shares its connections among the messages it starts (pure)."""

from mailhub.delivery import connections_for


def test_one_connection_each_when_none_is_spare():
    assert connections_for([1000, 1, 5], 3) == [1, 1, 1]


def test_a_large_list_post_gets_the_spare_connections():
    assert connections_for([1000], 8) == [8]
    assert connections_for([1000, 1], 8) == [7, 1]


def test_never_more_connections_than_transactions():
    assert connections_for([3], 8) == [3]
    assert connections_for([1, 1], 8) == [1, 1]


def test_spare_connections_go_where_most_transactions_wait():
    assert connections_for([400, 100], 8) == [6, 2]


def test_nothing_to_share():
    assert connections_for([], 8) == []
