"""What the Ctrl-C tests share (imported by the test modules; pytest puts tests/ on sys.path).

A job started in the background of a non-interactive shell (`.ci/run &`, nohup) inherits SIGINT as
ignored, and Python then installs no KeyboardInterrupt handler: a SIGINT sent to such a child does nothing.
The Ctrl-C tests start their children with SIGINT at its default, as a terminal's Ctrl-C finds them."""

from __future__ import annotations

import signal


def sigint_as_at_a_terminal() -> None:
    """`preexec_fn` for `subprocess.Popen`: the child starts with SIGINT at its default action."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
