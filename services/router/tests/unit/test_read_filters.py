"""The leads list's filters name every value the router can store, so refusing any other
value (a 422 naming it) never hides a lead."""

from __future__ import annotations

from typing import get_args

from revops.router.api import QueueName
from revops.router.domain.rules import MANUAL_REVIEW_QUEUE, UNASSIGNED_QUEUE
from revops.router.rotations import ALL_QUEUES


def test_the_queue_filter_takes_every_rotation_and_both_waiting_queues() -> None:
    rotations = {name for name, _, _ in ALL_QUEUES}
    assert set(get_args(QueueName)) == rotations | {UNASSIGNED_QUEUE, MANUAL_REVIEW_QUEUE}
