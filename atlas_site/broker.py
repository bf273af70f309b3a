"""The Celery broker transport: kombu's Redis transport, made to survive a Redis restart.

`CELERY_BROKER_TRANSPORT` (settings/base.py) names `Transport` below for a redis:// broker.

The defect (kombu 5.7.0 with celery 5.7.0, the newest releases of both): a worker whose
Redis restarts while it runs a task exits with

    CRITICAL/MainProcess Unrecoverable error: AttributeError("'NoneType' object has no
    attribute 'hostname'")

On a lost connection Celery's consumer calls `Connection.collect()`, which detaches the
transport from its connection (`transport.client = None`) but keeps the default channel,
then `Connection.close()`, which closes that channel again. kombu's Redis `Channel.close()`
disconnects its connection pools *before* restoring the messages it delivered and nobody
acknowledged yet (the running task's), so the restore builds a new pool from
`_connparams()`, which reads `self.connection.client.hostname`: None. The AttributeError is
not a connection error, so nothing catches it and the worker's main process ends. An idle
worker has nothing to restore and survives; a prefork worker with a free process is
waiting in BRPOP, whose failed read makes the first close give up before the restore.
The same mechanism, reached another way: celery/kombu#970 (a channel closed after its
connection, restoring unacked messages at shutdown) and celery/kombu#582 (`_connparams` on
a channel closed after its connection). No released kombu fixes it (checked on PyPI: 5.7.0
is the newest); remove this module when one does and the test below still passes.

What this transport changes, and only that:

- A channel remembers the Redis connection parameters it was opened with, so work it must
  still do once its connection object is gone succeeds (or fails with a connection error,
  which kombu and Celery handle) instead of raising AttributeError.
- Closing a channel restores the messages Celery no longer holds (prefetched, or waiting
  for a countdown), as kombu does, but not those of tasks still running in this worker:
  a restored one would be delivered again and run a second time beside the first
  (celery/celery#4671). A running task's message stays unacknowledged in Redis until the
  task ends and acknowledges it, through the closed channel, on a fresh connection.
- What cannot be done because Redis is down (a restore at close, an acknowledgement) is
  done by the next channel this process opens to the same Redis, i.e. as soon as the
  worker is connected again, instead of an hour later by the visibility timeout.

Tested by atlas_site/tests/test_faults_outage.py
(test_redis_restarted_under_a_busy_worker_loses_nothing).
"""

import logging
import threading
import weakref

from celery.worker import state
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from redis import exceptions as redis_exceptions

logger = logging.getLogger(__name__)


def _running_delivery_tags() -> set:
    """Delivery tags of the tasks this worker is running (none outside a worker, and none
    while it shuts down: then every message goes back, as kombu does)."""

    if state.should_stop not in (None, False) or state.should_terminate not in (None, False):
        return set()
    tags = set()
    for request in list(state.active_requests):
        message = getattr(request, "message", None)
        if message is not None:
            tags.add(message.delivery_tag)
    return tags


class _LeftBehind:
    """Restores and acknowledgements that wait for an open channel to the same Redis (server
    and database), and the channels open in this process to do them."""

    def __init__(self):
        self._lock = threading.Lock()
        self._work: dict[tuple, dict[str, set]] = {}
        self._channels = weakref.WeakSet()

    def add(self, server: tuple, kind: str, tags) -> None:
        with self._lock:
            self._work.setdefault(server, {"ack": set(), "restore": set()})[kind].update(tags)

    def take(self, server: tuple) -> dict[str, set]:
        with self._lock:
            return self._work.pop(server, {"ack": set(), "restore": set()})

    def opened(self, channel) -> None:
        with self._lock:
            self._channels.add(channel)

    def settle(self, server: tuple) -> None:
        """Do the waiting work now if a channel to `server` is open (else the next one does)."""
        with self._lock:
            channels = list(self._channels)
        for channel in channels:
            open_ = not channel.closed and channel.connection is not None
            if open_ and channel.redis_server == server:
                channel.settle_left_behind()
                return


left_behind = _LeftBehind()


class QoS(kombu_redis.QoS):
    def restore_unacked(self, client=None):
        running = _running_delivery_tags()
        tags = [tag for tag in self._delivered if tag not in running]
        kept = len(self._delivered) - len(tags)
        self._delivered.clear()
        if kept:
            logger.info(
                "broker: %d message(s) of running tasks stay unacknowledged until they end", kept
            )
        if not tags:
            return
        restored = 0
        try:
            with self.channel.conn_or_acquire(client) as client:
                for tag in tags:
                    self.restore_by_tag(tag, client=client)
                    restored += 1
        except self.channel.connection_errors as exc:
            left_behind.add(self.channel.redis_server, "restore", tags[restored:])
            logger.warning(
                "broker: %d unacknowledged message(s) will be restored once Redis answers "
                "again (%r)",
                len(tags) - restored,
                exc,
            )

    # A task that outlived its channel (the connection was lost under it) ends: its
    # message is acknowledged on a connection of its own, or put back in its queue by an
    # open channel (a closed one has lost the exchange table that names the queue).

    def ack(self, delivery_tag):
        if not self.channel.closed:
            super().ack(delivery_tag)
            return
        try:
            super().ack(delivery_tag)
        except self.channel.connection_errors as exc:
            virtual.QoS.ack(self, delivery_tag)
            left_behind.add(self.channel.redis_server, "ack", [delivery_tag])
            logger.warning(
                "broker: the acknowledgement of message %s waits until Redis answers (%r)",
                delivery_tag,
                exc,
            )
        finally:
            self.channel._disconnect_pools()  # the pool opened just for this

    def reject(self, delivery_tag, requeue=False):
        if not self.channel.closed:
            super().reject(delivery_tag, requeue=requeue)
        elif not requeue:
            self.ack(delivery_tag)
        else:
            virtual.QoS.ack(self, delivery_tag)
            left_behind.add(self.channel.redis_server, "restore", [delivery_tag])
            left_behind.settle(self.channel.redis_server)


class Channel(kombu_redis.Channel):
    QoS = QoS
    _atlas_connparams = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)  # connects (a PING): Redis answers
        left_behind.opened(self)
        self.settle_left_behind()

    @property
    def redis_server(self) -> tuple:
        params = self._atlas_connparams or {}
        return tuple(params.get(key) for key in ("host", "port", "path", "db"))

    def _connparams(self, asynchronous=False):
        transport = self.connection
        if transport is not None and transport.client is not None:
            if self._atlas_connparams is None:  # the first call, when the channel opens
                self._atlas_connparams = super()._connparams(asynchronous=False)
            return super()._connparams(asynchronous=asynchronous)
        if asynchronous or self._atlas_connparams is None:
            raise redis_exceptions.ConnectionError("the broker connection was closed")
        return dict(self._atlas_connparams)

    def close(self):
        try:
            super().close()
        finally:
            self._disconnect_pools()  # a pool the restore opened after kombu closed them

    def settle_left_behind(self) -> None:
        work = left_behind.take(self.redis_server)
        if not (work["ack"] or work["restore"]):
            return
        done = {"ack": set(), "restore": set()}
        try:
            for tag in work["ack"]:
                self.qos._remove_from_indices(tag).execute()
                done["ack"].add(tag)
            for tag in work["restore"] - work["ack"]:
                self.qos.restore_by_tag(tag)
                done["restore"].add(tag)
        except self.connection_errors + self.channel_errors as exc:
            logger.warning("broker: the rest still waits for Redis (%r)", exc)
            for kind in ("ack", "restore"):
                left_behind.add(self.redis_server, kind, work[kind] - done[kind])
        logger.info(
            "broker: %d acknowledgement(s) and %d restore(s) that waited for Redis done",
            len(done["ack"]),
            len(done["restore"]),
        )


class Transport(kombu_redis.Transport):
    Channel = Channel
