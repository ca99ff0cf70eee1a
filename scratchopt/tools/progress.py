"""Progress for the long commands (``scratchopt parity``, ``scratchopt demo optimizers``).

It goes to stderr, so stdout holds only the results (the table, the final losses):

* on a terminal, a live bar (rich), redrawn in place and removed at the end;
* elsewhere (a pipe, a file, a CI log), one flushed line as each stage starts,
  ``[ 3/65] SGD(momentum=0.9) float32``, so a long run is never silent.

The live bar writes to the stream it was given when it started, never to whatever
``sys.stdout`` is at the moment it redraws: a parity row that captures ``sys.stdout`` (the
callbacks' printed messages are compared with Keras's) then captures only what the
callback printed, not the bar (issue 12: the bar's ``━━━━ 80%`` was once read as Keras's
output).
"""

import sys
import time


class Stages:
    """``with Stages(total, title) as stages: stages.start(label); ...``: one call per stage.

    ``file`` (default ``sys.stderr``, read when the display is made) is where it draws;
    ``live`` (default: whether ``file`` is a terminal) chooses the bar over the lines.
    """

    def __init__(self, total, title, file=None, live=None, refresh_per_second=10):
        self.total, self.title = total, title
        self.file = sys.stderr if file is None else file
        self.live = _isatty(self.file) if live is None else bool(live)
        self.refresh_per_second = refresh_per_second
        self.done = 0
        self._progress = self._task = None
        self._started = None

    def __enter__(self):
        self._started = time.perf_counter()
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            # file= binds the console to this stream; redirect_*=False leaves sys.stdout and
            # sys.stderr alone, so nothing the stages print or capture passes through the bar.
            console = Console(file=self.file, stderr=False)
            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), console=console, transient=True,
                                      redirect_stdout=False, redirect_stderr=False,
                                      refresh_per_second=self.refresh_per_second)
            self._progress.start()
            self._task = self._progress.add_task(self.title, total=self.total)
        return self

    def start(self, label):
        """Stage ``label`` begins (the previous one, if any, is done)."""
        if self._progress is not None:
            self._progress.update(self._task, completed=self.done, description=f"{self.title}: {label}")
        else:
            width = len(str(self.total))
            print(f"[{self.done + 1:>{width}}/{self.total}] {label}", file=self.file, flush=True)
        self.done += 1

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.update(self._task, completed=self.done)
            self._progress.stop()
        elif exc[0] is None:
            print(f"{self.title}: {self.done} stages in {time.perf_counter() - self._started:.0f} s",
                  file=self.file, flush=True)
        return False


def _isatty(file):
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError):  # closed, or not a real stream
        return False
