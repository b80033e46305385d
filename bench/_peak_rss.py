"""Run a command and write its peak RSS in bytes and its CPU seconds (user + system) to a file:
``_peak_rss.py OUT CMD...`` writes ``"<bytes> <seconds>"``.

A small launcher, because Linux carries a parent's high-water mark into a forked child: a
command started straight from the benchmark (which holds the truth rows) would report at least
the benchmark's own size. Standard input and output are passed through.
"""

import os
import subprocess
import sys
from pathlib import Path

proc = subprocess.Popen(sys.argv[2:])
_pid, status, usage = os.wait4(proc.pid, 0)
Path(sys.argv[1]).write_text(f"{usage.ru_maxrss * 1024} {usage.ru_utime + usage.ru_stime}")
sys.exit(os.waitstatus_to_exitcode(status))
