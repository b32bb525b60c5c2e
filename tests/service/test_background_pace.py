"""Background work gives way to requests: while any is in flight (or ended within
QUIET_S), a block of copying or scrubbing is followed by a sleep that holds it to its share
of the thread's time; with no request about, it never sleeps."""

from __future__ import annotations

from icevault.service.foreground import LONGEST_STEP_S, QUIET_S, BackgroundPace, Foreground
from tests.support import SleepingClock


def _blocks(pace: BackgroundPace, time: SleepingClock, count: int, took: float) -> None:
    for _ in range(count):
        pace(1 << 20)
        time.now += took  # the block's work


def test_no_request_about_means_no_sleep() -> None:
    time = SleepingClock(start=1000.0)
    foreground = Foreground(0.1, clock=time.clock)
    _blocks(BackgroundPace(foreground, clock=time.clock, sleep=time.sleep), time, 5, 0.002)
    assert time.slept == []


def test_a_request_in_flight_holds_background_work_to_its_share() -> None:
    time = SleepingClock(start=1000.0)
    foreground = Foreground(0.1, clock=time.clock)
    foreground.started()
    _blocks(BackgroundPace(foreground, clock=time.clock, sleep=time.sleep), time, 4, 0.002)
    assert time.slept == [0.018] * 3  # 2 ms of work, then 18 ms given way: 10%
    foreground.finished()
    assert foreground.busy()  # a request just ended: the client's next may be on its way
    time.now += QUIET_S + 0.001
    assert not foreground.busy()


def test_no_sleep_is_longer_than_the_longest_step() -> None:
    time = SleepingClock(start=1000.0)
    foreground = Foreground(0.0, clock=time.clock)
    foreground.started()
    _blocks(BackgroundPace(foreground, clock=time.clock, sleep=time.sleep), time, 3, 0.001)
    assert time.slept == [LONGEST_STEP_S] * 2


def test_a_share_of_one_never_gives_way_and_the_rate_limit_still_applies() -> None:
    time = SleepingClock(start=1000.0)
    foreground = Foreground(1.0, clock=time.clock)
    foreground.started()
    told: list[int] = []
    pace = BackgroundPace(foreground, told.append, clock=time.clock, sleep=time.sleep)
    _blocks(pace, time, 3, 0.002)
    assert time.slept == []
    assert told == [1 << 20] * 3


def test_threads_side_by_side_share_one_share() -> None:
    time = SleepingClock(start=1000.0)
    foreground = Foreground(0.1, clock=time.clock)
    foreground.started()
    pace = BackgroundPace(foreground, threads=4, clock=time.clock, sleep=time.sleep)
    _blocks(pace, time, 3, 0.002)
    assert time.slept == [0.072] * 2  # each of 4 threads at 2.5%: 10% in all
    paused = Foreground(0.0, clock=time.clock)
    paused.started()
    zero = BackgroundPace(paused, threads=4, clock=time.clock, sleep=time.sleep)
    time.slept.clear()
    _blocks(zero, time, 2, 0.001)
    assert time.slept == [4 * LONGEST_STEP_S]  # together, still a block a half second
