"""Old module paths keep working after the move into packages (public paths are promises).

``import otel_energy.sampler`` (and ``from otel_energy.spans import ...``, ``mock.patch(
"otel_energy.runtime.x")``) gives the very module object now at its new path, so state is never
duplicated. One table, one finder, instead of a shim file per old module beside the packages.
The public paths that users type (``otel_energy.hf``, ``otel_energy.meter``,
``otel_energy.instrumentor``) are real modules instead, so type checkers see them too.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

#: old dotted name under ``otel_energy`` → its module now.
MOVED: dict[str, str] = {
    "environment_variables": "otel_energy.config.variables",
    "accumulate": "otel_energy.engine.accumulate",
    "readers": "otel_energy.engine.readers",
    "sampler": "otel_energy.engine.sampler",
    "runtime": "otel_energy.engine.runtime",
    "signals": "otel_energy.engine.signals",
    "utilization": "otel_energy.engine.utilization",
    "predict": "otel_energy.telemetry.predict",
    "carbon_providers": "otel_energy.carbon.providers",
    "carbon_live": "otel_energy.carbon.live",
    "carbon_forecast": "otel_energy.carbon.forecast",
    "metrics": "otel_energy.telemetry.instruments",
    "hf_metrics": "otel_energy.telemetry.step_histogram",
    "spans": "otel_energy.telemetry.spans",
    "ids": "otel_energy.telemetry.ids",
    "localexport": "otel_energy.telemetry.localexport",
    "ranks": "otel_energy.distributed.ranks",
    "job": "otel_energy.distributed.job",
    "runjob": "otel_energy.distributed.runjob",
    "ledger": "otel_energy.history.ledger",
    "ledger_rows": "otel_energy.history.rows",
    "history_cli": "otel_energy.cli.history",
    "report_chart": "otel_energy.report.chart",
    "run": "otel_energy.cli.run",
    "hooks": "otel_energy.integrations.hooks",
    "package": "otel_energy.integrations.package",
    "eco2ai": "otel_energy.integrations.transformers.eco2ai",
}


class _Alias(importlib.abc.Loader):
    """Loads an old name as the module at its new path (no second copy)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the target module was executed when it was imported."""


class MovedFinder(importlib.abc.MetaPathFinder):
    """Finds ``otel_energy.<old>`` for the names in :data:`MOVED`."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != "otel_energy" or name not in MOVED:
            return None
        new = MOVED[name]
        return importlib.util.spec_from_loader(fullname, _Alias(new), origin=new)


def install() -> None:
    """Add the finder once (idempotent)."""
    if not any(isinstance(f, MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedFinder())
