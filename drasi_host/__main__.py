"""``python -m drasi_host``: the ``drasi-host`` command line."""

from __future__ import annotations

import sys

from drasi_host.cli import main

if __name__ == "__main__":
    sys.exit(main())
