"""``flux python -m rainbow.submit [flux submit options] COMMAND...``: send a job to rainbow from Flux.

The documented command name; the code is :mod:`rainbow.flux.submit`.
"""

from __future__ import annotations

import sys

from rainbow.flux.submit import main

if __name__ == "__main__":
    sys.exit(main())
