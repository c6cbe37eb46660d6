"""``EnergyInstrumentor``: the ``opentelemetry_instrumentor`` entry point named ``energy``.

``opentelemetry-instrument`` loads it; ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=energy`` turns it
off. ``_instrument`` never raises: an exception other than ImportError would stop the other
instrumentors from loading.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.metrics import get_meter_provider

from otel_energy.config import ConfigError, load_config
from otel_energy.metrics import EnergyObserver, attach
from otel_energy.package import _instruments
from otel_energy.runtime import acquire_sampler, build_sampler, release_sampler
from otel_energy.sampler import Sampler

_log = logging.getLogger(__name__)


class EnergyInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Starts the sampler and registers the ``hw.energy``/``hw.power``/CO2e instruments.

    ``instrument(meter_provider=..., sampler=...)``; both default to the global meter provider and
    a sampler configured from ``OTEL_PYTHON_ENERGY_*``. ``uninstrument()`` stops the sampler
    (when nobody else uses it) and silences the instruments.
    """

    _sampler: Sampler | None = None
    _observer: EnergyObserver | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        try:
            sampler = kwargs.get("sampler")
            factory = None if sampler is not None else (lambda: build_sampler(load_config()))
            self._sampler = acquire_sampler(factory if sampler is None else (lambda: sampler))
            provider = kwargs.get("meter_provider") or get_meter_provider()
            self._observer = attach(provider, self._sampler)
        except ConfigError as exc:
            _log.error("otel-energy: not instrumenting: %s", exc)
        except Exception:
            _log.exception("otel-energy: instrumentation failed; training continues unmeasured")

    def _uninstrument(self, **kwargs: Any) -> None:
        try:
            if self._observer is not None:
                self._observer.sampler = None
            if self._sampler is not None:
                release_sampler(self._sampler)
        except Exception:
            _log.exception("otel-energy: uninstrument failed")
        finally:
            self._sampler = None
            self._observer = None

    @property
    def sampler(self) -> Sampler | None:
        """The sampler started by ``instrument()``, None when not instrumented."""
        return self._sampler
