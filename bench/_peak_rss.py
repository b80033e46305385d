"""Run a command and write its peak RSS in bytes to a file: ``_peak_rss.py OUT CMD...``.

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
Path(sys.argv[1]).write_text(str(usage.ru_maxrss * 1024))
sys.exit(os.waitstatus_to_exitcode(status))
