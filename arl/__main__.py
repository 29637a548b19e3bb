from __future__ import annotations

import sys

from arl.cli import main

sys.exit(main())
