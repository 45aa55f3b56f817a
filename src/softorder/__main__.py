import sys

from softorder.cli import main

sys.exit(main())
