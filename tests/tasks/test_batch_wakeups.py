"""An idle ORM cluster wakes on the enqueue's NOTIFY, not at its next poll (issue 19.4).

Against a real `manage.py qcluster` whose poll is 60 s: before, an idle pusher slept the poll between two
empty dequeues, so a run submitted to an idle cluster waited for up to a minute. Now its package's insert
notifies (migration tasks 0011) and the pusher, LISTENing on a connection of its own, takes it at once;
the poll is left for delayed packages and expired leases only. A delayed run (countdown) still starts:
the NOTIFY of its insert wakes the pusher early, which finds it not due and waits again.
"""

from __future__ import annotations

import time

import pytest

from tasks import actions
from tasks.models import Status, TaskRun
from tests.tasks.conftest import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

POLL = 60.0


def test_an_idle_cluster_starts_a_new_run_without_waiting_for_its_poll(cluster_factory):
    cluster = cluster_factory(broker="orm", workers=1)
    cluster.q_cluster["poll"] = POLL
    cluster.env["Q_POLL"] = str(POLL)
    cluster.start()
    warm = actions.task_submit(name="system.noop")  # the first dequeue may come before it: then a NOTIFY
    wait_for(lambda: TaskRun.objects.get(pk=warm.pk).status == Status.SUCCEEDED, timeout=30,
             message="the first run")
    for _ in range(3):
        time.sleep(1.0)  # the pusher found the queue empty again and waits
        started = time.monotonic()
        run = actions.task_submit(name="system.noop")
        wait_for(lambda run=run: TaskRun.objects.get(pk=run.pk).status == Status.SUCCEEDED, timeout=POLL / 3,
                 message=f"the run on an idle cluster whose poll is {POLL:g} s")
        assert time.monotonic() - started < POLL / 3


def test_a_listener_that_has_just_begun_listening_says_look_again(monkeypatch):
    """A package committed between the pusher's empty dequeue and its LISTEN sent a NOTIFY nobody heard: the
    first wait after LISTEN begins returns at once, so the pusher dequeues again instead of sleeping its poll
    (the test above timed out on its first run so, under load, with a 60 s poll)."""
    from django.db import connection

    from tasks.engine.orm_broker import QueueListener

    monkeypatch.setattr(QueueListener, "in_pusher", staticmethod(lambda: True))
    listener = QueueListener("listener-race", "default")
    try:
        started = time.monotonic()
        assert listener.wait(POLL) is True and time.monotonic() - started < 5
        assert listener.connection is not None  # listening now: the next wait waits for a NOTIFY
        started = time.monotonic()
        assert listener.wait(0.5) is False and time.monotonic() - started >= 0.5
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify('courtside_tasks', 'listener-race')")
        assert listener.wait(POLL) is True
    finally:
        listener.close()
