"""``flux python -m rainbow.register [options]``: register the enclosing Flux instance with rainbow.

The documented command name; the code is :mod:`rainbow.flux.register`.
"""

from __future__ import annotations

import sys

from rainbow.flux.register import main

if __name__ == "__main__":
    sys.exit(main())
