"""``python -m torchport``: the ``torchport`` command (for example under ``torchrun``)."""

import sys

from torchport.cli import main

sys.exit(main())
