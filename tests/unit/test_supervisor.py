"""`landing up`'s supervisor on real child processes: restarts with backoff, gives up naming the component, stops."""

from __future__ import annotations

import signal
import sys
import time

from testkit.local import wait_for
from ops.stack import Component, Supervisor

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_a_crashed_component_is_restarted_with_backoff_and_said_so(capsys):
    supervisor = Supervisor(env={}, window=60, max_restarts=3, first_delay=0.2)
    sensor = supervisor.start(Component("sensor", SLEEPER))
    first = sensor.proc
    try:
        first.kill()
        first.wait()
        assert supervisor.check() is None
        assert (
            "sensor exited with -9; restarting it in 0.2 s (restart 1 of 3 allowed within 60 s)"
            in capsys.readouterr().out
        )
        assert sensor.proc is first, "not before its backoff"
        wait_for(lambda: supervisor.check() is None and sensor.proc is not first, 5, "the restart", interval=0.1)
        assert sensor.proc.poll() is None
        assert f"sensor restarted (pid {sensor.proc.pid})" in capsys.readouterr().out
    finally:
        supervisor.stop_all()


def test_a_component_that_keeps_crashing_stops_everything_naming_it():
    supervisor = Supervisor(env={}, window=60, max_restarts=2, first_delay=0.1)
    bystander = supervisor.start(Component("prefect server", SLEEPER))
    supervisor.start(Component("sensor", [sys.executable, "-c", "raise SystemExit(3)"]))
    try:
        failure = wait_for(supervisor.check, 15, "the supervisor to give up", interval=0.1)
        assert failure.startswith("sensor exited with 3 and has crashed 3 times within 60 s; stopping everything")
        assert bystander.proc.poll() is None, "the others are left for stop_all"
    finally:
        supervisor.stop_all()
    assert bystander.proc.poll() == -signal.SIGTERM


def test_crashes_outside_the_window_are_forgotten():
    supervisor = Supervisor(env={}, window=0.2, max_restarts=1, first_delay=0.1)
    flaky = supervisor.start(Component("sensor", [sys.executable, "-c", "raise SystemExit(1)"]))
    try:
        for _ in range(3):  # each crash comes more than the window after the one before: never "repeated"
            wait_for(lambda: flaky.proc.poll() is not None, 10, "the crash", interval=0.05)
            time.sleep(0.3)
            assert supervisor.check() is None
            wait_for(lambda: supervisor.check() is None and flaky.restart_at is None, 5, "the restart", interval=0.05)
    finally:
        supervisor.stop_all()


def test_stop_all_sends_each_component_its_own_signal_newest_first(tmp_path):
    trap = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGINT, lambda *_: (open(sys.argv[1], 'a').write(sys.argv[2] + ' SIGINT\\n'), sys.exit(0)))\n"
        "signal.signal(signal.SIGTERM, lambda *_: (open(sys.argv[1], 'a').write(sys.argv[2] + ' SIGTERM\\n'), sys.exit(0)))\n"
        "open(sys.argv[1] + '.' + sys.argv[2], 'w').close()\n"
        "time.sleep(60)\n"
    )
    log = tmp_path / "stops"
    supervisor = Supervisor(env={})
    supervisor.start(Component("server", [sys.executable, "-c", trap, str(log), "server"]))
    supervisor.start(Component("runner", [sys.executable, "-c", trap, str(log), "runner"], stop_signal=signal.SIGINT))
    wait_for(lambda: all((tmp_path / f"stops.{n}").exists() for n in ("server", "runner")), 10, "both handlers")
    supervisor.stop_all()
    assert log.read_text().splitlines() == ["runner SIGINT", "server SIGTERM"]
