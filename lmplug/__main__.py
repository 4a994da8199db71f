import sys

from lmplug.cli.main import main

sys.exit(main())
