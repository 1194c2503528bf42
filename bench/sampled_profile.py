"""Sample another process with py-spy for the span of a ``with`` block, then print where it ran.

Unlike cProfile this does not slow the sampled process down, so its figures can be compared with
the bench's own. py-spy is not a dependency: ``pip install py-spy``; without it nothing is sampled.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

SAMPLES_PER_S = 250


@contextlib.contextmanager
def sampled_profile(pid: int | None, output: Path | None) -> Iterator[None]:
    """Record ``pid``'s Python stacks into ``output`` (py-spy's collapsed form) while the block runs;
    print its busiest functions afterwards. Does nothing when ``output`` or ``pid`` is None."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if output is None or pid is None:
        yield
        return
    if not Path(py_spy).exists():
        print("py-spy not installed: nothing sampled", file=sys.stderr)
        yield
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    recorder = subprocess.Popen([py_spy, "record", "--pid", str(pid), "--rate", str(SAMPLES_PER_S),
                                 "--format", "raw", "--function", "--nonblocking", "-o", str(output)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            recorder.wait(30)
        except subprocess.TimeoutExpired:
            recorder.kill()
            recorder.wait()
    print_busiest(output)


def print_busiest(collapsed: Path, top: int = 30) -> None:
    """Functions by own samples and by samples under them (share of all samples)."""
    if not collapsed.exists():
        print(f"no samples written to {collapsed}", file=sys.stderr)
        return
    own: Counter[str] = Counter()
    under: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame for frame in stack.split(";") if not frame.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            under[frame] += count
    print(f"--- py-spy {collapsed}: {total} samples at {SAMPLES_PER_S}/s")
    for title, counts in (("own", own), ("inclusive", under)):
        print(f"  by {title} samples:")
        for frame, count in counts.most_common(top):
            print(f"  {count / max(total, 1):6.1%}  {frame}")
