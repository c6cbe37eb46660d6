"""``python -m otel_energy.cli``: the ``otel-energy`` command."""

import sys

from otel_energy.cli import main

sys.exit(main())
