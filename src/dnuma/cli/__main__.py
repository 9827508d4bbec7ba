"""``python -m dnuma.cli``: the ``dnuma`` command."""

import sys

from . import main

sys.exit(main())
