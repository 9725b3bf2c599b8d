import sys

from mailhub.cli import main

sys.exit(main())
