"""``flux python -m rainbow.agent``."""

import sys

from rainbow.agent.command import main

sys.exit(main())
