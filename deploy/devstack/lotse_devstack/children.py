"""Child processes that die with whoever started them.

Test runs and the dev stack start SecantusDB and the services in their own
session (so a Ctrl-C in the terminal does not kill them mid-write) and stop them
on the way out. A run that is killed (``kill -9``, a CI timeout) never reaches
that code, and the children kept running, each holding a core. On Linux the
kernel's parent-death signal closes that gap: the child gets SIGKILL when the
thread that started it is gone. Elsewhere this is a no-op.
"""

from __future__ import annotations

import ctypes
import signal
import sys
import threading
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` for ``subprocess.Popen``, or None where it cannot apply.

    The signal follows the starting *thread*, so it is set only when the main
    thread starts the child: a worker thread's exit would otherwise kill it."""
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return None
    return _die_with_parent
