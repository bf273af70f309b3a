"""Ownership of running work: its session lock, its owner's heartbeat, and telling when
the owner is gone (atlas_site.ownership)."""

import time

import psycopg
import pytest
from django.core.cache import cache
from django.db import connection

from atlas_site import advisory_locks, ownership
from atlas_site.settings import base as default_settings
from atlas_site.testing.celery_worker import database_url

pytestmark = pytest.mark.django_db(transaction=True)

NS = advisory_locks.RUN


@pytest.fixture
def session():
    """Another session of the test database, as another worker's would be."""
    opened = []

    def connect(database: str | None = None) -> psycopg.Connection:
        url = database_url(database or connection.settings_dict["NAME"])
        opened.append(psycopg.connect(url, autocommit=True))
        return opened[-1]

    yield connect
    for conn in opened:
        conn.close()


@pytest.fixture(autouse=True)
def _quick(settings):
    settings.ATLAS_HEARTBEAT_SECONDS = 0.2
    settings.ATLAS_OWNER_TIMEOUT_SECONDS = 1


def heartbeat_key(key: int) -> str:
    return ownership.HEARTBEAT_KEY.format(connection.settings_dict["NAME"], NS, key)


def forget(*keys: int) -> None:
    database = connection.settings_dict["NAME"]
    cache.delete_many(
        [
            template.format(database, NS, key)
            for key in keys
            for template in (
                ownership.HEARTBEAT_KEY,
                ownership.STOPPED_KEY,
                ownership.RESENT_KEY,
            )
        ]
    )


def test_a_lock_held_in_another_database_is_not_this_ones(session):
    """Advisory locks are the server's: another database's run 5 is not this one's run 5."""
    other = session("postgres")
    other.execute("SELECT pg_advisory_lock(%s, 990001)", [NS])
    assert not advisory_locks.is_held(NS, 990001)
    assert advisory_locks.holders(NS, [990001]) == {}
    mine = session()
    mine.execute("SELECT pg_advisory_lock(%s, 990001)", [NS])
    assert advisory_locks.holders(NS, [990001]) == {990001: mine.info.backend_pid}


def test_an_owner_beats_while_it_holds_the_lock(settings):
    forget(990002)
    with ownership.owned(NS, 990002) as mine:
        assert mine
        first = ownership.heartbeat_of(NS, 990002)
        assert first["backend"] == connection.connection.info.backend_pid
        assert first["pid"] > 0 and first["host"]
        # Written again by its thread (a thread started earlier may be in a longer sleep).
        deadline = time.monotonic() + 10
        while ownership.heartbeat_of(NS, 990002)["at"] == first["at"]:
            assert time.monotonic() < deadline, "no second heartbeat"
            time.sleep(0.05)
        assert advisory_locks.is_held(NS, 990002)
    assert ownership.heartbeat_of(NS, 990002) is None
    assert not advisory_locks.is_held(NS, 990002)


def test_work_whose_lock_no_session_holds_has_lost_its_owner(session):
    forget(990003, 990004)
    alive = session()
    alive.execute("SELECT pg_advisory_lock(%s, 990004)", [NS])
    assert ownership.ownerless(NS, [990003, 990004]) == [990003]


def test_a_heartbeat_missing_decides_nothing_the_lock_does(session):
    """Redis restarted empty, or an owner that has not beaten yet: the lock says owned."""
    forget(990005)
    holder = session()
    holder.execute("SELECT pg_advisory_lock(%s, 990005)", [NS])
    assert ownership.ownerless(NS, [990005]) == []


def test_a_session_kept_open_after_its_owner_stopped_beating_is_ended(session, settings):
    """A stray process keeps a dead owner's session (and lock): the heartbeat tells."""
    forget(990006, 990007)
    stray = session()
    stray.execute("SELECT pg_advisory_lock(%s, 990006)", [NS])
    backend = stray.info.backend_pid
    cache.set(heartbeat_key(990006), {"backend": backend, "at": time.time() - 5, "pid": 1})
    # Another owner, beating: left alone.
    alive = session()
    alive.execute("SELECT pg_advisory_lock(%s, 990007)", [NS])
    cache.set(
        heartbeat_key(990007),
        {"backend": alive.info.backend_pid, "at": time.time() + 3600, "pid": 2},
    )

    # Seen stopped once: not yet (an owner cut off from Redis for a while beats again).
    assert ownership.ownerless(NS, [990006, 990007]) == []
    time.sleep(settings.ATLAS_HEARTBEAT_SECONDS + 0.1)
    assert ownership.ownerless(NS, [990006, 990007]) == [990006]
    assert not advisory_locks.is_held(NS, 990006)
    with pytest.raises(psycopg.OperationalError):
        stray.execute("SELECT 1")
    assert advisory_locks.is_held(NS, 990007)


def test_a_new_owner_is_not_judged_by_the_last_ones_heartbeat(session):
    """The stopped heartbeat names another session: the one holding the lock now is new."""
    forget(990008)
    cache.set(heartbeat_key(990008), {"backend": 1, "at": time.time() - 3600, "pid": 1})
    new_owner = session()
    new_owner.execute("SELECT pg_advisory_lock(%s, 990008)", [NS])
    assert ownership.ownerless(NS, [990008]) == []
    time.sleep(0.3)
    assert ownership.ownerless(NS, [990008]) == []
    assert advisory_locks.is_held(NS, 990008)


def test_work_is_resent_once_per_owner_lost():
    forget(990009)
    assert ownership.claim_resend(NS, 990009)
    assert not ownership.claim_resend(NS, 990009)  # sent, not taken up yet
    with ownership.owned(NS, 990009):  # a delivery takes it up ...
        pass
    assert ownership.claim_resend(NS, 990009)  # ... and dies: sent again at once


def test_a_stray_session_is_ended_within_the_recovery_goal_by_default():
    """After its owner died: stale once the timeout is past (the last beat came before the
    death), seen so at the next look (a watchdog period), and again a heartbeat later."""
    worst = (
        default_settings.ATLAS_OWNER_TIMEOUT_SECONDS
        + default_settings.ATLAS_WATCHDOG_SECONDS
        + max(default_settings.ATLAS_HEARTBEAT_SECONDS, default_settings.ATLAS_WATCHDOG_SECONDS)
    )
    assert worst <= 30  # the recovery goal (issue 11)
    # A live owner is taken for dead only after missing beats in a row, not one.
    assert (
        default_settings.ATLAS_OWNER_TIMEOUT_SECONDS >= 3 * default_settings.ATLAS_HEARTBEAT_SECONDS
    )
