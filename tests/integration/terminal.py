"""A command run in a real pseudo-terminal, as a user runs it from a shell.

The terminal's session is led by a minimal job-control shell (this file run
as a script) which, as bash does, starts the command in its own process
group and makes that group the terminal's foreground group. A key typed
into the terminal (Ctrl-C, Ctrl-\\, Ctrl-Z) then makes the kernel's line
discipline send the signal to that whole group, workers included, exactly
as when a user presses it; and Ctrl-Z really suspends (the group is not
orphaned: its shell is in the same session). Output goes to a file, not the
terminal, so farm writes its events as JSON lines that the tests parse.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path

import psutil

CTRL_C = b"\x03"          # SIGINT
CTRL_BACKSLASH = b"\x1c"  # SIGQUIT
CTRL_Z = b"\x1a"          # SIGTSTP


def _take_terminal() -> None:
    """In the shell, after setsid(): make stdin (the pty) the controlling
    terminal of the session."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def job_control_shell(argv: list[str]) -> int:
    """Run argv as a foreground job of this session's terminal and return
    its exit status (128+N for a signal N), waiting through stops."""
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)   # tcsetpgrp from our background group
    pid = os.fork()
    if pid == 0:
        os.setpgid(0, 0)
        signal.signal(signal.SIGTTOU, signal.SIG_DFL)
        os.execvp(argv[0], argv)
    try:
        os.setpgid(pid, pid)      # both sides, as shells do: whichever runs first
    except OSError:
        pass                      # the child did it and has exec'd already
    os.tcsetpgrp(0, pid)
    while True:
        _, status = os.waitpid(pid, os.WUNTRACED)
        if not os.WIFSTOPPED(status):
            code = os.waitstatus_to_exitcode(status)
            return code if code >= 0 else 128 - code


class Terminal:
    """argv running in a fresh pseudo-terminal; output in out_path."""

    def __init__(self, argv: list[str], out_path: Path, env: dict | None = None, cwd=None):
        self.out_path = out_path
        self.pty, tty = os.openpty()
        with open(out_path, "ab") as out:
            # proc is the shell: it exits with the job's status right after the job.
            self.proc = subprocess.Popen([sys.executable, __file__, *argv], stdin=tty, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=_take_terminal, env=env, cwd=cwd)
        os.close(tty)
        self.job = self._job_pid()

    def _job_pid(self, timeout: float = 10) -> int:
        """The pid of the command (the shell's child), which is also its
        process group: the terminal's foreground group."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if os.getpgid(kid := psutil.Process(self.proc.pid).children()[0].pid) == kid:
                    return kid
            except (IndexError, psutil.NoSuchProcess, ProcessLookupError):
                pass
            if self.proc.poll() is not None:
                raise AssertionError(f"the shell exited ({self.proc.returncode})")
            time.sleep(0.01)
        raise AssertionError("the job did not start")

    def press(self, key: bytes) -> None:
        """Type a key into the terminal."""
        os.write(self.pty, key)

    def output(self) -> str:
        return self.out_path.read_text(errors="replace") if self.out_path.exists() else ""

    def events(self) -> list[dict]:
        """farm's event lines (JSON) in the output."""
        out = []
        for line in self.output().splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def named(self, name: str) -> list[dict]:
        return [e for e in self.events() if e.get("event") == name]

    def wait_event(self, name: str, timeout: float = 15) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.named(name)
            if found:
                return found[0]
            if self.proc.poll() is not None:
                raise AssertionError(f"exited ({self.proc.returncode}) before {name}:\n{self.output()}")
            time.sleep(0.05)
        raise AssertionError(f"no {name} within {timeout}s:\n{self.output()}")

    def processes(self) -> list[psutil.Process]:
        """The shell, the command's process and all their descendants."""
        try:
            top = psutil.Process(self.proc.pid)
            return [top, *top.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def press_and_time_exit(self, key: bytes, timeout: float = 10) -> float:
        """Type key; seconds until the command and every process it had
        started are gone (timeout if they are not)."""
        procs = self.processes()
        start = time.monotonic()
        self.press(key)
        self.proc.wait(timeout)
        _, alive = psutil.wait_procs(procs, timeout=max(0.1, timeout - (time.monotonic() - start)))
        assert not alive, f"still running: {alive}"
        return time.monotonic() - start

    def close(self) -> None:
        """Kill what is left (a failed test) and close the terminal."""
        for p in reversed(self.processes()):
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        if self.proc.poll() is None:
            self.proc.wait(5)
        os.close(self.pty)


if __name__ == "__main__":
    sys.exit(job_control_shell(sys.argv[1:]))
