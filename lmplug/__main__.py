import sys

from lmplug.cli import main

sys.exit(main())
