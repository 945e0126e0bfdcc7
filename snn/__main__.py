import sys

from snn.cli import main

sys.exit(main())
