"""``python -m molgen ...``: the ``molgen`` command, for environments where the console script is not
installed (the package only on ``PYTHONPATH``)."""

import sys

from molgen.cli.main import main

sys.exit(main())
