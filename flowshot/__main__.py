import sys

from flowshot.cli import main

sys.exit(main())
