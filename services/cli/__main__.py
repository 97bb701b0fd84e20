"""``python -m services.cli``: the ``slipstream`` command."""

import sys

from services.cli.main import main

sys.exit(main())
