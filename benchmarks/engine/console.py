"""What a suite run shows on the terminal, and where library chatter goes instead.

The terminal gets progress, one-line notices and errors. Everything libraries print while
jobs run (mmengine's INFO/WARNING lines, weight-init dumps, deprecation notices,
``warnings.warn`` with its source line) goes to the run's log file, named on the terminal.
On a terminal the progress is a bar per suite and per training; written to a file or a
pipe it is one plain line per job (no carriage returns or cursor escape codes).
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import sys
import textwrap
import time
from pathlib import Path
from typing import Iterator, Optional, TextIO

from tqdm.auto import tqdm

WIDTH = 100  # terminal lines are kept to this many characters
_log_stream: Optional[TextIO] = None  # the open run log, while library output goes there


def interactive() -> bool:
    """Whether progress may redraw itself (stderr is a terminal)."""
    return sys.stderr.isatty()


def shorten(text: str, width: int = WIDTH) -> str:
    """``text`` on one line of at most ``width`` characters."""
    return textwrap.shorten(' '.join(text.split()), width, placeholder=' ...',
                            break_on_hyphens=False)


def say(text: str) -> None:
    """A notice of one terminal line (addresses shortened to their host, long text cut);
    the full text goes to the run log."""
    host = re.sub(r'(?:https?|s3)://(\S+?)/\S*', r'<\1>', text)
    tqdm.write(shorten(host), file=sys.stderr)
    if _log_stream is not None:
        _log_stream.write(f'{time.strftime("%H:%M:%S")} {text}\n')


def run_log_path(work_dir: Path) -> Path:
    """``<work dir>/logs/run-<date>-<host>-<pid>.log``: one file per runner process."""
    stamp = time.strftime('%Y%m%d-%H%M%S')
    host = socket.gethostname().split('.')[0][:16]
    return Path(work_dir) / 'logs' / f'run-{stamp}-{host}-{os.getpid()}.log'


def _mm_loggers() -> list[logging.Logger]:
    from mmengine.logging import MMLogger

    return list(getattr(MMLogger, '_instance_dict', {}).values())


@contextlib.contextmanager
def library_output_to(log_path: Path) -> Iterator[Path]:
    """Send library output to ``log_path`` while the block runs.

    ``print`` to stdout (mmengine's loggers of each job write there) and Python warnings
    go to the file; mmengine loggers that exist already get the file as well and keep
    only errors on the terminal (their weight-init dump then goes to the file too).
    """
    global _log_stream
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # both append (O_APPEND): lines of the handler and of the redirected stdout interleave
    with open(log_path, 'a', buffering=1, encoding='utf-8') as stream:
        handler = logging.FileHandler(log_path, encoding='utf-8')
        handler.setFormatter(logging.Formatter('%(asctime)s %(name)s %(levelname)s %(message)s'))
        handler.setLevel(logging.INFO)  # registry look-ups (DEBUG) would bury the warnings
        changed: list[tuple[logging.Handler, int]] = []
        for logger in _mm_loggers():
            for h in logger.handlers:
                if type(h) is logging.StreamHandler:  # noqa: E721 - not file handlers
                    changed.append((h, h.level))
                    h.setLevel(logging.ERROR)
            logger.addHandler(handler)  # a FileHandler: mmengine's weight-init dump goes here
        warnings_logger = logging.getLogger('py.warnings')
        warnings_logger.addHandler(handler)
        warnings_logger.propagate = False
        logging.captureWarnings(True)
        _log_stream = stream
        try:
            with contextlib.redirect_stdout(stream):
                yield log_path
        finally:
            _log_stream = None
            logging.captureWarnings(False)
            warnings_logger.removeHandler(handler)
            warnings_logger.propagate = True
            for h, level in changed:
                h.setLevel(level)
            for logger in _mm_loggers():  # ours, and job loggers bound to the redirected stdout
                logger.handlers = [h for h in logger.handlers if h is not handler
                                   and getattr(h, 'stream', None) is not stream]
            handler.close()


def run_name(job) -> str:
    """``<stage>/<method>/<set>/seed<k>``: how a job is named in progress and tracking.

    The set is the fine-tuning set (with the pretraining set after ``@`` when the method
    pretrained on one) or, for pretraining, the pretraining set."""
    if job.stage == 'pretrain':
        where = job.pretrain_set
    else:
        where = job.dataset + (f'@{job.pretrain_set}' if job.pretrain_set else '')
    return f'{job.stage}/{job.method}/{where}/seed{job.seed}{_variant(job.spec)}'


def _variant(spec: dict) -> str:
    """What sets a protocol run apart from the plain row with the same names."""
    parts = []
    labels = spec.get('labels')
    if isinstance(labels, dict):
        parts.append(f'n{labels.get("n")}draw{labels.get("draw")}')
    if spec.get('trick'):
        parts.append(str(spec['trick']))
    mode = (spec.get('scale') or {}).get('encoder_mode')
    if mode and mode != 'full':
        parts.append(str(mode))
    return ''.join(f'/{p}' for p in parts)


class SuiteProgress:
    """Progress over a suite's jobs, weighted by each job's estimated cost (``est_cost``),
    so the remaining time reflects the jobs still to run rather than their number. Cached
    jobs leave the total; jobs without an estimate weigh as the mean of the others."""

    def __init__(self, jobs: list, suite_name: str, enabled: bool = True):
        costs = [max(float(j.est_cost or 0.0), 0.0) for j in jobs]
        known = [c for c in costs if c > 0]
        fallback = sum(known) / len(known) if known else 1.0
        self.cost = {id(j): c or fallback for j, c in zip(jobs, costs)}
        self.total = sum(self.cost.values())
        self.count, self.done = len(jobs), 0
        self.work_done = 0.0
        self.start = time.monotonic()
        self.enabled = enabled
        self.suite_name = suite_name
        self.cached_run = self.cached_first = 0  # cached jobs since the last line: one line
        self.bar = None
        if enabled and interactive():
            self.bar = tqdm(total=self.total, desc=f'suite {suite_name}', dynamic_ncols=True,
                            smoothing=0, file=sys.stderr,
                            bar_format='{desc} {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]')

    def started(self, job) -> None:
        if self.bar is not None:
            self.bar.set_description_str(
                f'suite {self.suite_name} {self.done + 1}/{self.count} {run_name(job)}')

    def finished(self, job, status: str, seconds: float) -> None:
        """Count ``job`` as done; a cached job takes its cost out of the work to do."""
        self.done += 1
        cost = self.cost.get(id(job), 0.0)
        if status == 'cached':
            self.total -= cost
        else:
            self.work_done += cost
        if self.bar is not None:
            self.bar.total = self.total
            self.bar.update(0 if status == 'cached' else cost)
            return
        if not self.enabled:
            return
        if status == 'cached':
            if not self.cached_run:
                self.cached_first = self.done
            self.cached_run += 1
            return
        self._say_cached()
        line = f'[{self.done}/{self.count}] {run_name(job)}: {status} in {_duration(seconds)}'
        left = self.remaining_s()
        if left is not None and self.done < self.count:
            line += f'; about {_duration(left)} left'
        tqdm.write(shorten(line), file=sys.stderr)

    def remaining_s(self) -> Optional[float]:
        """Seconds left at the pace so far (cost done per second of running)."""
        if self.work_done <= 0:
            return None
        rate = self.work_done / max(time.monotonic() - self.start, 1e-9)
        return max(self.total - self.work_done, 0.0) / rate

    def _say_cached(self) -> None:
        """One line for the cached jobs since the last line (thousands on a resumed suite)."""
        if self.cached_run:
            first, last = self.cached_first, self.cached_first + self.cached_run - 1
            where = f'{first}' if first == last else f'{first}-{last}'
            tqdm.write(f'[{where}/{self.count}] {self.cached_run} cached', file=sys.stderr)
            self.cached_run = 0

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            self._say_cached()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 120:
        return f'{seconds} s'
    if seconds < 7200:
        return f'{seconds // 60} min'
    return f'{seconds // 3600} h {seconds % 3600 // 60:02d} min'
