"""AMD GPUs through a fake ``amdsmi`` checked against the real package's source."""

from __future__ import annotations

import ast
import importlib.util
import logging
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_energy.config import load_config
from otel_energy.distributed.ranks import rank_info
from otel_energy.engine.runtime import build_sampler
from otel_energy.engine.sampler import Sampler
from otel_energy.hf import EnergyCallback
from otel_energy.sensors import discover_sensors
from otel_energy.sensors.amd import POWER_KEYS, discover_amd
from otel_energy.sensors.base import METHOD_AMDSMI_COUNTER, METHOD_AMDSMI_POWER, Unmeasured
from otel_energy.telemetry.instruments import attach
from otel_energy.testing.tiny import tiny_trainer
from tests.conftest import FakeClock
from tests.fakes import amdsmi as fake_module
from tests.fakes.amdsmi import FakeAmdGpu, FakeAmdSmi, accumulator
from tests.support.hf_helpers import SAMPLE_CLOCK, Telemetry
from tests.support.step_spans import STEP_NAMES
from tests.support.subprocesses import capture, child_env

UUIDS = [f"{i}eff74a1-0000-1000-80{i}0-a8f3c4e5d6b{i}" for i in range(4)]


# ---- the fake against the real package ---------------------------------------------------------


def real_source(module: str) -> ast.Module:
    """The real ``amdsmi`` submodule's syntax tree (importing it needs ROCm's library)."""
    spec = importlib.util.find_spec("amdsmi")
    assert spec is not None and spec.submodule_search_locations, "pip install amdsmi (dev extra)"
    path = Path(next(iter(spec.submodule_search_locations))) / f"{module}.py"
    return ast.parse(path.read_text())


def functions(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def string_constants(node: ast.AST) -> set[str]:
    return {
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    }


def test_fake_matches_real_amdsmi_api() -> None:
    real = functions(real_source("amdsmi_interface"))
    exported = string_constants(real_source("__init__")) | {
        a.name
        for n in ast.walk(real_source("__init__"))
        if isinstance(n, ast.ImportFrom)
        for a in n.names
    }
    fake = {n: f for n, f in vars(FakeAmdSmi).items() if n.startswith("amdsmi_")}
    assert len(fake) >= 11
    for name, fn in fake.items():
        assert name in real and name in exported, name
        real_params = [a.arg for a in real[name].args.args]
        assert list(fn.__code__.co_varnames[1 : fn.__code__.co_argcount]) == real_params, name
    # The dict keys production code reads exist in the real functions' results.
    for fn, keys in (
        ("amdsmi_get_energy_count", {"energy_accumulator", "counter_resolution"}),
        ("amdsmi_get_power_info", {*POWER_KEYS, "power_limit"}),
        ("amdsmi_get_gpu_activity", {"gfx_activity"}),
        ("amdsmi_get_gpu_asic_info", {"market_name"}),
        ("amdsmi_get_gpu_board_info", {"product_serial"}),
        ("amdsmi_get_gpu_driver_info", {"driver_version"}),
    ):
        assert keys <= string_constants(real[fn]), fn
        assert keys <= set(getattr(FakeAmdSmi(), fn)(_handle()).keys()), fn
    classes = {
        n.name: n for n in real_source("amdsmi_exception").body if isinstance(n, ast.ClassDef)
    }
    assert {"AmdSmiException", "AmdSmiLibraryException"} <= classes.keys() & exported
    memory = next(
        n
        for n in real_source("amdsmi_interface").body
        if isinstance(n, ast.ClassDef) and n.name == "AmdSmiMemoryType"
    )
    members = [
        t.id
        for s in memory.body
        if isinstance(s, ast.Assign)
        for t in s.targets
        if isinstance(t, ast.Name)
    ]
    assert members == [m.name for m in fake_module.AmdSmiMemoryType]
    wrapper = real_source("amdsmi_wrapper")
    consts = {
        t.id: s.value.value
        for s in wrapper.body
        if isinstance(s, ast.Assign) and isinstance(s.value, ast.Constant)
        for t in s.targets
        if isinstance(t, ast.Name)
    }
    assert consts["AMDSMI_STATUS_NOT_SUPPORTED"] == fake_module.AMDSMI_STATUS_NOT_SUPPORTED
    assert [consts[f"AMDSMI_MEM_TYPE_{m.name}"] for m in fake_module.AmdSmiMemoryType] == [
        m.value for m in fake_module.AmdSmiMemoryType
    ]


def _handle() -> Any:
    return FakeAmdSmi([FakeAmdGpu(UUIDS[0])]).amdsmi_get_processor_handles()[0]


def test_production_code_only_calls_functions_that_exist_in_amdsmi() -> None:
    import otel_energy.sensors.amd as mod

    called = set(re.findall(r"smi\.(amdsmi_\w+)", Path(mod.__file__).read_text()))
    real = functions(real_source("amdsmi_interface"))
    assert called and called <= real.keys(), called - real.keys()
    assert called <= {n for n in vars(FakeAmdSmi) if n.startswith("amdsmi_")}


def test_importing_otel_energy_never_imports_amdsmi() -> None:
    code = (
        "import sys, otel_energy, otel_energy.sensors, otel_energy.hf;"
        "print('amdsmi' in sys.modules)"
    )
    out = capture([sys.executable, "-c", code], env=None)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# ---- discovery ----------------------------------------------------------------------------------


def gpus(n: int = 4, **kw: Any) -> FakeAmdSmi:
    return FakeAmdSmi([FakeAmdGpu(UUIDS[i], **kw) for i in range(n)])


def test_identity_and_method() -> None:
    smi = FakeAmdSmi([FakeAmdGpu(UUIDS[0]), FakeAmdGpu(UUIDS[1], energy_count=None)])
    a, b = (s.info for s in discover_amd({}, smi))
    assert a.hw_id == UUIDS[0] and a.hw_type == "gpu" and a.vendor == "AMD"
    assert a.model == "AMD Instinct MI300X" and a.driver_version == "6.8.5"
    assert a.method == METHOD_AMDSMI_COUNTER and b.method == METHOD_AMDSMI_POWER
    assert a.power_limit_w == 750 and a.max_power_w == 1500
    assert a.attributes()["hw.vendor"] == "AMD" and "hw.parent" not in a.attributes()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, [0, 1, 2, 3]),
        ({"HIP_VISIBLE_DEVICES": "2,0"}, [2, 0]),
        ({"CUDA_VISIBLE_DEVICES": "3"}, [3]),
        ({"HIP_VISIBLE_DEVICES": "1", "CUDA_VISIBLE_DEVICES": "3"}, [1]),  # HIP wins
        ({"ROCR_VISIBLE_DEVICES": "1,3"}, [1, 3]),
        ({"ROCR_VISIBLE_DEVICES": "1,3", "HIP_VISIBLE_DEVICES": "1"}, [3]),  # HIP indexes ROCR's
        ({"ROCR_VISIBLE_DEVICES": f"GPU-{UUIDS[2]}"}, [2]),
        ({"HIP_VISIBLE_DEVICES": UUIDS[3][:8]}, [3]),  # unique prefix
        ({"HIP_VISIBLE_DEVICES": "1,9,2"}, [1]),  # stops at the first invalid entry
        ({"HIP_VISIBLE_DEVICES": ""}, []),
    ],
)
def test_visible_devices(env: dict[str, str], expected: list[int]) -> None:
    assert [s.info.hw_id for s in discover_amd(env, gpus())] == [UUIDS[i] for i in expected]


def test_rank_measures_its_own_gpu_with_the_nvml_rule() -> None:
    rank = rank_info({"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"})
    assert [s.info.hw_id for s in discover_amd({}, gpus(2), rank=rank)] == [UUIDS[1]]
    # one GPU handed to each rank by the launcher: measured by that rank
    one = discover_amd({"HIP_VISIBLE_DEVICES": "1"}, gpus(2), rank=rank)
    assert [s.info.hw_id for s in one] == [UUIDS[1]]


def test_a_failing_gpu_is_reported_and_the_others_measured(
    caplog: pytest.LogCaptureFixture,
) -> None:
    smi = gpus(3)
    smi.gpus[1].lost = True
    missing: list[Unmeasured] = []
    with caplog.at_level(logging.WARNING):
        got = [s.info.hw_id for s in discover_amd({}, smi, unmeasured=missing)]
    assert got == [UUIDS[0], UUIDS[2]]
    assert [u.hw_type for u in missing] == ["gpu"] and missing[0].hw_id == "amdsmi:1"
    assert any("AMD GPU 1" in r.message and "amd-smi" in r.message for r in caplog.records)


def test_mi250_package_powered_on_one_die_is_labelled_as_the_package() -> None:
    smi = FakeAmdSmi(
        [
            FakeAmdGpu(UUIDS[0], "AMD Instinct MI250X", serial="PKG7"),
            FakeAmdGpu(
                UUIDS[1], "AMD Instinct MI250X", serial="PKG7", energy_count=None, power_w="N/A"
            ),
            FakeAmdGpu(UUIDS[2], "AMD Instinct MI250X", serial="PKG8"),
            FakeAmdGpu(UUIDS[3], "AMD Instinct MI250X", serial="PKG8"),
        ]
    )
    missing: list[Unmeasured] = []
    sensors = discover_amd({}, smi, unmeasured=missing)
    attrs = {s.info.hw_id: s.info.attributes() for s in sensors}
    assert list(attrs) == [UUIDS[0], UUIDS[2], UUIDS[3]]
    assert attrs[UUIDS[0]]["hw.parent"] == "amd-package:PKG7"
    assert attrs[UUIDS[0]]["otel_energy.gpu.measures"] == "package"
    assert attrs[UUIDS[0]]["otel_energy.gpu.dies"] == "2"
    assert [(u.hw_id, UUIDS[0] in u.reason) for u in missing] == [(UUIDS[1], True)]
    # both dies of PKG8 report: each measures its own die, both labelled with their package
    for uuid in UUIDS[2:]:
        assert attrs[uuid]["otel_energy.gpu.measures"] == "die"
        assert attrs[uuid]["hw.parent"] == "amd-package:PKG8"


@pytest.mark.parametrize("explicit", [False, True])
def test_missing_amdsmi_is_quiet_unless_asked_for(
    explicit: bool, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="otel_energy"):
        assert discover_amd({}, FakeAmdSmi(available=False), explicit=explicit) == []
    [record] = [r for r in caplog.records if "amdsmi unavailable" in r.message]
    assert record.levelno == (logging.ERROR if explicit else logging.INFO)
    assert "otel-energy[amd]" in record.message


def test_the_real_amdsmi_without_rocm_degrades_to_one_info_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The installed real package raises at import without libamd_smi.so: no crash, no GPU."""
    with caplog.at_level(logging.INFO, logger="otel_energy"):
        sensors = discover_sensors(load_config({"OTEL_PYTHON_ENERGY_SOURCES": "auto"}), {})
    assert not [s for s in sensors if s.info.vendor == "AMD"]
    lines = [r for r in caplog.records if "amdsmi unavailable" in r.message]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO


def test_auto_discovery_without_rocm_writes_nothing_to_stdout() -> None:
    """The real amdsmi prints its library error to stdout at import: the user's output (a JSON
    line, a pipe) must not get it when nobody asked for AMD."""
    code = (
        "import logging, sys; logging.basicConfig(stream=sys.stderr, level=logging.INFO);"
        "from otel_energy.config import load_config;"
        "from otel_energy.sensors import discover_sensors;"
        "discover_sensors(load_config({}), {})"
    )
    out = capture([sys.executable, "-c", code], child_env(("OTEL_", "ROCM_"), pythonpath=False))
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
    assert "amdsmi unavailable" in out.stderr


# ---- measurement --------------------------------------------------------------------------------


def test_counter_and_power_integration_energy(clock: FakeClock) -> None:
    smi = FakeAmdSmi(
        [
            FakeAmdGpu(UUIDS[0], energy_count=lambda: accumulator(250.0, clock), power_w=250),
            FakeAmdGpu(UUIDS[1], energy_count=None, power_w=400),
        ]
    )
    s = Sampler(discover_amd({}, smi), clock=clock, interval_s=0.1)
    t0 = clock.t
    for _ in range(5):
        s.sample_once()
        clock.advance(0.5)
    w = s.window(t0, t0 + 2.0)
    assert w.by_type["gpu"] == pytest.approx(250.0 * 2 + 400.0 * 2, rel=1e-6)
    assert w.gpu_utilization == pytest.approx(0.9)
    power = {d.info.hw_id: d.power_w for d in s.snapshot().devices}
    assert power == {UUIDS[0]: 250.0, UUIDS[1]: 400.0}


def test_utilization_failure_never_affects_amd_energy(clock: FakeClock) -> None:
    def broken() -> float:
        raise fake_module.AmdSmiLibraryException(fake_module.AMDSMI_STATUS_NOT_SUPPORTED)

    gpu = FakeAmdGpu(UUIDS[0], energy_count=lambda: accumulator(100.0, clock), gfx_activity=broken)
    s = Sampler(discover_amd({}, FakeAmdSmi([gpu])), clock=clock, interval_s=0.1)
    t0 = clock.t
    for _ in range(3):
        s.sample_once()
        clock.advance(1.0)
    w = s.window(t0, t0 + 2.0)
    assert w.energy_j == pytest.approx(200.0, rel=1e-6) and w.gpu_utilization is None
    assert not s.snapshot().devices[0].failed


def test_amd_metrics_read_back(clock: FakeClock) -> None:
    gpu = FakeAmdGpu(UUIDS[0], gfx_activity=42, vram_used_b=48 * 2**30, vram_total_b=192 * 2**30)
    s = Sampler(discover_amd({}, FakeAmdSmi([gpu])), clock=clock)
    s.sample_once()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    attach(provider, s)
    data = reader.get_metrics_data()
    provider.shutdown()
    assert data is not None
    got = {
        m.name: next(iter(m.data.data_points))  # type: ignore[union-attr]
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    assert got["hw.gpu.utilization"].value == pytest.approx(0.42)
    assert got["hw.gpu.memory.usage"].value == 48 * 2**30
    assert got["hw.gpu.memory.limit"].value == 192 * 2**30
    assert got["hw.gpu.memory.utilization"].value == pytest.approx(0.25)
    assert got["hw.power"].value == 300.0
    for name in ("hw.energy", "hw.power", "hw.gpu.utilization"):
        attrs = got[name].attributes
        assert attrs["hw.vendor"] == "AMD" and attrs["otel_energy.method"] == METHOD_AMDSMI_COUNTER


# ---- a real tiny Trainer on a fake AMD GPU ----------------------------------------------------


def test_trainer_spans_measure_an_amd_gpu(tmp_path: Path, tel: Telemetry) -> None:
    watts = 500.0
    gpu = FakeAmdGpu(
        UUIDS[0], energy_count=lambda: accumulator(watts, lambda: SAMPLE_CLOCK.last), power_w=500
    )
    env = {"OTEL_PYTHON_ENERGY_SOURCES": "amd", "OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL": "0.01"}
    config = load_config(env)
    smi = FakeAmdSmi([gpu])
    cb = EnergyCallback(
        tracer_provider=tel.tracer_provider,
        meter_provider=tel.meter_provider,
        config=config,
        sampler_factory=lambda: build_sampler(config, env, amdsmi=smi, clock=SAMPLE_CLOCK),
    )
    tiny_trainer(str(tmp_path), callbacks=[cb], num_train_epochs=1, n_train=32).train()
    [run] = tel.finished("train")
    duration_s = (run.end_time - run.start_time) / 1e9  # type: ignore[operator]
    # 15.3 uJ resolution: exact to well under a millijoule
    assert run.attributes["otel_energy.gpu.energy"] == pytest.approx(watts * duration_s, abs=0.005)
    assert run.attributes["otel_energy.gpu.utilization"] == pytest.approx(0.9)
    assert run.attributes["otel_energy.gpu.low_utilization"] is False
    step_level = [s for s in tel.finished() if s.name in STEP_NAMES]  # own or group spans
    assert step_level and all(s.attributes["otel_energy.energy"] > 0 for s in step_level)
