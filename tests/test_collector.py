"""The TUI's garbage-collector settings: applied once, full collections only when due, and the
process's own settings back afterwards (tests run many apps in one process)."""

from __future__ import annotations

import gc

from cockpit.ui import collector
from cockpit.ui.collector import CollectorTuning


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_applied_once_and_restored() -> None:
    before = gc.get_threshold()
    tuning = CollectorTuning()
    try:
        tuning.apply()
        assert tuning.applied and gc.get_threshold() == collector.THRESHOLDS
        assert gc.get_freeze_count() > 0
        tuning.apply()  # idempotent
    finally:
        tuning.restore()
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    tuning.restore()  # and again: nothing to undo
    assert gc.get_threshold() == before


def test_full_collections_wait_for_a_quiet_screen_but_not_for_ever() -> None:
    clock = Clock()
    tuning = CollectorTuning(clock=clock)
    assert not tuning.tick(quiet_for=100)  # not applied: nothing to do
    try:
        tuning.apply()
        clock.now += collector.QUIET_EVERY - 1
        assert not tuning.tick(quiet_for=100), "too soon after the last one"
        clock.now += 2
        assert not tuning.tick(quiet_for=collector.QUIET_S / 2), "the screen is busy"
        assert tuning.tick(quiet_for=collector.QUIET_S), "quiet and due"
        clock.now += collector.FULL_EVERY - 1
        assert not tuning.tick(quiet_for=0)
        clock.now += 1
        assert tuning.tick(quiet_for=0), "never quiet: runs anyway"
        assert tuning.full_collections == 2
    finally:
        tuning.restore()
