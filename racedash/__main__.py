import sys

from racedash.cli import main

sys.exit(main())
