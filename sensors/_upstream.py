"""The fence around the sensor's uses of watchdog internals (docs/upstream.md, U14).

Every private upstream name the sensor touches is here and nowhere else (tests/unit/test_upstream.py).
"""

from __future__ import annotations

from watchdog.observers import Observer


def inotify_observer():
    """An inotify observer for drop folders, asking the kernel only for the events that can announce a file: created,
    closed after writing, and moved in (IN_MOVED_TO alone), and the writes and attribute changes that follow a close. Without IN_MOVED_FROM, watchdog holds nothing back for
    0.5 s to pair it, so a rename, within the folder or from anywhere else on the disk, is reported at once (as a
    move from ""). watchdog's platform default where there is no inotify."""
    try:
        from watchdog.observers.api import DEFAULT_OBSERVER_TIMEOUT, BaseObserver
        from watchdog.observers.inotify import InotifyFullEmitter, InotifyObserver
        from watchdog.observers.inotify_c import InotifyConstants as IN, InotifyFD
    except ImportError:
        return Observer()

    class DropFolderEmitter(InotifyFullEmitter):
        def get_event_mask_from_filter(self):
            # IN_MODIFY and IN_ATTRIB: a write or a chmod/utime after a close restarts the sensor's quiet wait
            return IN.IN_CREATE | IN.IN_CLOSE_WRITE | IN.IN_MOVED_TO | IN.IN_DELETE_SELF | IN.IN_MODIFY | IN.IN_ATTRIB

    class DropFolderObserver(InotifyObserver):
        def __init__(self) -> None:  # InotifyObserver.__init__ (watchdog 7), with the emitter above
            self._inotify_fd = InotifyFD()
            self._inotify_fd.start()
            BaseObserver.__init__(
                self, DropFolderEmitter, timeout=DEFAULT_OBSERVER_TIMEOUT, inotify_fd=self._inotify_fd
            )

    return DropFolderObserver()
