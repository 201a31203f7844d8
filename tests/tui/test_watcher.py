import time
from types import SimpleNamespace

import pytest

from workbench.tui.watcher import ChangeHandler, Debouncer, start_observer

from .conftest import FakeClock


def event(kind, src, dest="", is_directory=False):
    return SimpleNamespace(event_type=kind, src_path=src, dest_path=dest, is_directory=is_directory)


def test_debouncer_waits_for_quiet_period():
    clock = FakeClock()
    d = Debouncer(delay=0.2, clock=clock)
    assert d.take_due() == set()
    d.touch("/p/a.py")
    clock.advance(0.1)
    d.touch("/p/b.py")  # a burst: the quiet period restarts
    clock.advance(0.15)
    assert d.take_due() == set()
    clock.advance(0.06)
    assert d.take_due() == {"/p/a.py", "/p/b.py"}
    assert d.take_due() == set() and not d.pending


def test_handler_filters_and_follows_renames():
    clock = FakeClock()
    d = Debouncer(delay=0.1, clock=clock)
    h = ChangeHandler(d, "/proj/workbench.toml")
    h.dispatch(event("modified", "/proj/flows/notes.txt"))
    h.dispatch(event("modified", "/proj/flows/.#hello.py.swp"))
    h.dispatch(event("opened", "/proj/flows/hello.py"))  # the app reading a flow to redraw it
    h.dispatch(event("closed_no_write", "/proj/flows/hello.py"))
    assert not d.pending
    h.dispatch(event("moved", "/proj/flows/a.py", "/proj/flows/b.py"))
    h.dispatch(event("modified", "/proj/workbench.toml"))
    clock.advance(1)
    assert d.take_due() == {"/proj/flows/a.py", "/proj/flows/b.py", "/proj/workbench.toml"}
    h.dispatch(event("deleted", "/proj/flows/sub", is_directory=True))
    clock.advance(1)
    assert d.take_due() == {"/proj/flows/sub"}


@pytest.mark.slow
def test_real_observer_sees_a_save(tmp_path):
    (tmp_path / "flows").mkdir()
    d = Debouncer(delay=0.05)
    observer = start_observer(
        ChangeHandler(d, str(tmp_path / "workbench.toml")), [(tmp_path / "flows", True), (tmp_path, False)]
    )
    try:
        time.sleep(0.1)
        (tmp_path / "flows" / "x.py").write_text("# new flow\n")
        deadline = time.monotonic() + 10
        due: set = set()
        while time.monotonic() < deadline and not due:
            time.sleep(0.02)
            due = d.take_due()
        assert str(tmp_path / "flows" / "x.py") in due
        (tmp_path / "flows" / "x.py").read_text()  # reading is not a change
        time.sleep(0.3)
        assert d.take_due() == set()
    finally:
        observer.stop()
        observer.join(5)
