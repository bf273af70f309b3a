"""atlas_site.broker: what happens to delivered messages when the broker connection is lost.

Each test runs a private redis-server and drives kombu directly, the way Celery's
consumer does on a lost connection (`collect()`, then `close()`, errors ignored). A task
"still running" is a delivery tag `_running_delivery_tags` reports, as the worker's active
requests would. The whole path with a real worker and a restarted Redis:
test_faults_outage.py::test_redis_restarted_under_a_busy_worker_loses_nothing.
"""

from contextlib import suppress
from pathlib import Path

import kombu
import pytest
import redis
from django.conf import settings
from kombu import Connection, Exchange, Queue
from kombu.common import ignore_errors

from atlas_site import broker
from atlas_site.testing.services import private_redis

QUEUE = Queue("work", Exchange("work", type="direct"), routing_key="work")


@pytest.fixture
def server(tmp_path):
    with private_redis(tmp_path / "redis") as server:
        yield server


def connect(server) -> Connection:
    return Connection(server.url(0), transport="atlas_site.broker:Transport")


def deliver(connection: Connection, body: str = "job"):
    """Publish one message and take it (unacknowledged), as a worker's consumer does."""
    with connection.Producer() as producer:
        producer.publish(body, exchange=QUEUE.exchange, routing_key="work", declare=[QUEUE])
    message = QUEUE(connection.default_channel).get(no_ack=False)
    assert message is not None and message.payload == body
    return message


def lose(connection: Connection) -> None:
    """What Celery's consumer does with a connection it lost."""
    with suppress(Exception):
        connection.collect()
    ignore_errors(connection, connection.close)


def state(server) -> tuple[int, int]:
    """(messages waiting in the queue, messages delivered and not acknowledged)."""
    client = redis.Redis.from_url(server.url(0))
    return client.llen("work"), client.hlen("unacked")


@pytest.fixture
def running(monkeypatch):
    """Delivery tags of the tasks 'still running' in this process."""
    tags: set = set()
    monkeypatch.setattr(broker, "_running_delivery_tags", lambda: set(tags))
    return tags


def test_a_message_nobody_runs_goes_back_to_its_queue_when_the_connection_is_lost(server):
    connection = connect(server)
    deliver(connection)
    assert state(server) == (0, 1)
    lose(connection)
    assert state(server) == (1, 0)


def test_a_running_tasks_message_stays_until_the_task_ends_and_acknowledges_it(server, running):
    connection = connect(server)
    message = deliver(connection)
    running.add(message.delivery_tag)
    lose(connection)
    assert state(server) == (0, 1)  # not handed out again while it runs
    message.ack()  # through its closed channel
    assert state(server) == (0, 0)


def test_with_redis_down_the_restore_waits_for_the_next_channel(server):
    connection = connect(server)
    deliver(connection)
    server.stop()
    lose(connection)
    server.start()
    assert state(server) == (0, 1)
    with connect(server) as again:
        again.default_channel  # noqa: B018 - opening a channel settles what waited
        assert state(server) == (1, 0)


def test_a_task_that_ends_while_redis_is_down_is_acknowledged_once_it_answers(server, running):
    connection = connect(server)
    message = deliver(connection)
    running.add(message.delivery_tag)
    server.stop()
    lose(connection)
    message.ack()  # no error: it waits
    server.start()
    assert state(server) == (0, 1)
    with connect(server) as again:
        again.default_channel  # noqa: B018
        assert state(server) == (0, 0)


def test_a_running_task_rejected_after_the_reconnection_goes_back_once(server, running):
    connection = connect(server)
    message = deliver(connection)
    running.add(message.delivery_tag)
    lose(connection)
    with connect(server) as again:
        again.default_channel  # noqa: B018 - the worker is connected again
        message.reject(requeue=True)  # e.g. its pool process died (reject_on_worker_lost)
        assert state(server) == (1, 0)
        again_message = QUEUE(again.default_channel).get(no_ack=False)
        assert again_message.payload == "job"
        again_message.ack()
    assert state(server) == (0, 0)


def test_a_channel_whose_connection_is_gone_raises_a_connection_error_not_attributeerror(
    server,
):
    connection = connect(server)
    channel = connection.default_channel
    transport = connection.transport
    lose(connection)
    assert transport.client is None  # what made kombu raise AttributeError
    fresh = broker.Channel.__new__(broker.Channel)  # never connected: nothing remembered
    fresh.connection = transport
    with pytest.raises(redis.exceptions.ConnectionError):
        fresh._connparams()
    assert channel._connparams()["port"] == server.port  # remembered from when it opened


def test_celery_uses_this_transport_for_a_redis_broker():
    from atlas_site.celery import app

    with app.connection_for_write() as connection:
        assert isinstance(connection.transport, broker.Transport)


def test_kombu_is_pinned_at_the_version_this_transport_was_written_for():
    """The transport relies on kombu's Redis internals: kombu moves only on purpose."""
    lines = (Path(settings.BASE_DIR) / "requirements.txt").read_text().splitlines()
    assert f"kombu=={kombu.__version__}" in lines
