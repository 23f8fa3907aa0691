import sys

from rainbow.cli import main

sys.exit(main())
