"""Every attribute key and metric name otel-energy emits, in one place.

``hw.*`` names come from the ``opentelemetry-semantic-conventions`` package (hardware model,
status: development), so a rename upstream shows up here as an import error or a changed value,
not as a silent drift. What the conventions lack (provenance, CO2e, carbon intensity, training
structure) lives in our ``otel_energy.`` namespace. docs/metrics.md and docs/spans.md describe each
name; a test checks that every name here is documented there.

Naming rule followed (semantic conventions, "names SHOULD NOT coincide with namespaces"): no name
here is also the prefix of another, with two exceptions kept because names are promises: the
deprecated metric ``METRIC_CARBON_INTENSITY_DEPRECATED`` (dashboards) and the job span's
``COMMAND`` / ``COMMAND_EXIT_CODE`` pair (docs/metrics.md, Deviations).
"""

from __future__ import annotations

from typing import Final

from opentelemetry.semconv._incubating.attributes import host_attributes as _host
from opentelemetry.semconv._incubating.attributes import hw_attributes as _hw
from opentelemetry.semconv._incubating.attributes import process_attributes as _process
from opentelemetry.semconv._incubating.metrics import hw_metrics as _hwm

# --- Semantic-convention attributes (hardware and host) -------------------------------------
# Re-bound here so that callers import every key from this one module.

HW_ID: Final[str] = _hw.HW_ID
"""Stable device id: GPU UUID, RAPL zone directory, ``estimate:cpu`` (no unit)."""
HW_TYPE: Final[str] = _hw.HW_TYPE
"""Component type: ``gpu``, ``cpu`` or ``memory`` (no unit)."""
HW_NAME: Final[str] = _hw.HW_NAME
"""Human-readable device name (no unit)."""
HW_PARENT: Final[str] = _hw.HW_PARENT
"""``hw.id`` of the containing component: a MIG instance's GPU, a DRAM zone's package."""
HW_VENDOR: Final[str] = _hw.HW_VENDOR
"""Hardware vendor (``NVIDIA``, ``AMD``, ``Intel``); never the measuring interface."""
HW_MODEL: Final[str] = _hw.HW_MODEL
"""Device model, e.g. ``NVIDIA H100 80GB HBM3`` (no unit)."""
HW_DRIVER_VERSION: Final[str] = _hw.HW_DRIVER_VERSION
"""GPU driver version (no unit)."""
HW_GPU_TASK: Final[str] = _hw.HW_GPU_TASK
"""Engine a ``hw.gpu.utilization`` point measures (``general``)."""
HOST_NAME: Final[str] = _host.HOST_NAME
"""Host name. On our points as well as the resource: see docs/metrics.md, Deviations."""

# --- Semantic-convention metrics ---------------------------------------------------------------

METRIC_HW_ENERGY: Final[str] = _hwm.HW_ENERGY
"""Energy of a component, J (observable counter)."""
METRIC_HW_POWER: Final[str] = _hwm.HW_POWER
"""Power of a component, W (observable gauge)."""
METRIC_HW_HOST_ENERGY: Final[str] = _hwm.HW_HOST_ENERGY
"""Energy of the whole node from a node-level meter (hwmon, Redfish, IPMI), J (observable
counter). Never summed with ``hw.energy``: the components are inside it."""
METRIC_HW_HOST_POWER: Final[str] = _hwm.HW_HOST_POWER
"""Power of the whole node from a node-level meter, W (observable gauge)."""
METRIC_HW_GPU_UTILIZATION: Final[str] = _hwm.HW_GPU_UTILIZATION
"""GPU busy fraction, 1 (0..1, observable gauge)."""
METRIC_HW_GPU_MEMORY_USAGE: Final[str] = _hwm.HW_GPU_MEMORY_USAGE
"""GPU memory in use, By (observable up-down counter)."""
METRIC_HW_GPU_MEMORY_LIMIT: Final[str] = _hwm.HW_GPU_MEMORY_LIMIT
"""GPU memory size, By (observable up-down counter)."""
METRIC_HW_GPU_MEMORY_UTILIZATION: Final[str] = _hwm.HW_GPU_MEMORY_UTILIZATION
"""GPU memory usage / limit, 1 (0..1, observable gauge)."""

# --- Our metrics -------------------------------------------------------------------------------

METRIC_CO2E: Final = "otel_energy.co2e"
"""CO2-equivalent of a component's energy, g (observable counter)."""
METRIC_GRID_CARBON_INTENSITY: Final = "otel_energy.grid.carbon_intensity"
"""Grid carbon intensity used for CO2e, g/kW/h, i.e. g/(kW.h) (observable gauge)."""
METRIC_CARBON_INTENSITY_DEPRECATED: Final = "otel_energy.carbon_intensity"
"""Deprecated alias of ``METRIC_GRID_CARBON_INTENSITY`` (unit ``g/kWh``), kept for dashboards.
Deprecated because it is also the namespace of the ``otel_energy.carbon_intensity.*`` names."""
METRIC_CARBON_INTENSITY_FORECAST: Final = "otel_energy.carbon_intensity.forecast"
"""Forecast grid carbon intensity some hours ahead, gCO2e per kWh (observable gauge)."""
METRIC_STEP_ENERGY: Final = "otel_energy.step.energy"
"""Energy of each optimizer step, J (histogram)."""
METRIC_PREDICTION_ENERGY: Final = "otel_energy.prediction.energy"
"""Projected energy of the whole run, J (gauge); also a span attribute of that name."""
METRIC_ATTRIBUTED_ENERGY: Final = "otel_energy.attributed.energy"
"""The job's share of a component's energy since measurement started, J (observable counter,
per device, one series per ``otel_energy.attribution.view``); ``hw.energy`` stays the node's."""
METRIC_PREDICTION_CO2E: Final = "otel_energy.prediction.co2e"
"""Projected CO2e of the whole run, g (gauge); also a span attribute of that name."""
METRIC_PREDICTION_DURATION: Final = "otel_energy.prediction.duration"
"""Projected duration of the whole run, s (gauge); also a span attribute of that name."""

PREDICTION_AT_STEP: Final = "otel_energy.prediction.at_step"
"""Global step a projection was made at (int)."""
PREDICTION_TOTAL_STEPS: Final = "otel_energy.prediction.total_steps"
"""The run's planned optimizer steps (int)."""
PREDICTION_INTENSITY_BASIS: Final = "otel_energy.prediction.intensity_basis"
"""``forecast`` or ``current``: the intensity the remaining CO2e was projected at."""

# --- Provenance of every device series ---------------------------------------------------------

METHOD: Final = "otel_energy.method"
"""How a value was obtained: one of ``sensors.base.METHOD_*`` (no unit)."""
ESTIMATED: Final = "otel_energy.estimated"
"""True when the value is a model, not a measurement (bool)."""
RELATIVE_UNCERTAINTY: Final = "otel_energy.relative_uncertainty"
"""Relative uncertainty of the series from its method (1, e.g. 0.1 for +/-10%; docs/accuracy.md)."""
GPU_MIG_INSTANCES: Final = "otel_energy.gpu.mig_instances"
"""MIG instance UUID the series is (no unit)."""
GPU_MEASURES: Final = "otel_energy.gpu.measures"
"""What a GPU series covers: ``mig_share``, ``package`` or ``die`` (no unit)."""
GPU_MIG_SLICES: Final = "otel_energy.gpu.mig_slices"
"""A MIG instance's slices / its GPU's slices, e.g. ``3/7`` (no unit)."""
GPU_DIES: Final = "otel_energy.gpu.dies"
"""Dies of an AMD multi-die package visible to amdsmi (count, as a string)."""

# --- Who measured (every point and span) -------------------------------------------------------

RANK: Final = "otel_energy.rank"
"""Global rank of the measuring process (int)."""
LOCAL_RANK: Final = "otel_energy.local_rank"
"""Rank within the node (int)."""
WORLD_SIZE: Final = "otel_energy.world_size"
"""Number of ranks of the job (int)."""
NODE_LEVEL: Final = "otel_energy.node_level"
"""True on the rank that measures the node's CPU and memory (bool)."""
JOB_ID: Final = "otel_energy.job.id"
"""Distributed job id (no unit)."""
JOB_RANKS_REPORTED: Final = "otel_energy.job.ranks_reported"
"""Ranks whose totals a job span sums (int)."""

# --- Carbon ------------------------------------------------------------------------------------

CARBON_INTENSITY_VALUE: Final = "otel_energy.carbon_intensity.value"
"""Intensity used, gCO2e per kWh (span attribute)."""
CARBON_INTENSITY_SOURCE: Final = "otel_energy.carbon_intensity.source"
"""Where the intensity came from, e.g. ``table:owid-ember:FRA:2023`` (no unit)."""
CARBON_INTENSITY_KIND: Final = "otel_energy.carbon_intensity.kind"
"""``average`` or ``marginal`` emissions (no unit)."""
CARBON_INTENSITY_TIMESTAMP: Final = "otel_energy.carbon_intensity.timestamp"
"""UTC time (ISO 8601) the live intensity is for."""
CARBON_INTENSITY_HORIZON_H: Final = "otel_energy.carbon_intensity.horizon_h"
"""Forecast horizon, hours ahead (int)."""
PUE: Final = "otel_energy.pue"
"""Power usage effectiveness multiplied into CO2e (ratio, 1)."""

# --- Span energy -------------------------------------------------------------------------------

ENERGY: Final = "otel_energy.energy"
"""Energy of all measured devices over a span, J."""
POWER: Final = "otel_energy.power"
"""Average power over a span, W."""
CO2E: Final = "otel_energy.co2e"
"""CO2e over a span, g (the span attribute shares the metric's name and meaning)."""
DURATION: Final = "otel_energy.duration"
"""Duration of a span, s."""
INTERPOLATED: Final = "otel_energy.interpolated"
"""The span's energy is an allocation (shorter than two sensor periods) (bool)."""
ENERGY_UNCERTAINTY: Final = "otel_energy.energy_uncertainty"
"""Half-width of the band the span's energy lies in, J: each series' method uncertainty
(``otel_energy.relative_uncertainty``) combined, plus the allocation bound (docs/accuracy.md)."""
HOST_ENERGY: Final = "otel_energy.host.energy"
"""Energy of the whole node over a span from a node-level meter, J (only with one)."""
HOST_COVERAGE: Final = "otel_energy.host.coverage"
"""Component energy / node energy, 1: the share of the node meter the component sensors explain
(span attribute and observable gauge; only with a node-level meter)."""
HOST_UNMEASURED_ENERGY: Final = "otel_energy.host.unmeasured_energy"
"""Node energy minus component energy, J: what no component sensor saw (PSU losses, fans, disks,
NICs, the board). Span attribute and observable up-down counter (only with a node meter)."""
COMPLETE: Final = "otel_energy.complete"
"""Samples existed on both sides of the span / every rank reported (bool)."""
GLITCHES: Final = "otel_energy.glitches"
"""Implausible readings dropped in or next to the span (count)."""
STALLED: Final = "otel_energy.stalled"
"""Some device had no fresh reading for part of the span (bool)."""
MISSING_DEVICES: Final = "otel_energy.missing_devices"
"""Comma list of ``hw.id``s found but not measured (no unit)."""

# --- Whose energy: the job's share (docs/attribution.md) ------------------------------------------

ATTRIBUTED_ENERGY: Final = "otel_energy.attributed.energy"
"""The job's attributed energy over a span (attributional view: its share of dynamic energy plus
its share of the idle energy of the hardware it held), J."""
ATTRIBUTED_CO2E: Final = "otel_energy.attributed.co2e"
"""CO2e of the job's attributed energy at the average intensity, g."""
DYNAMIC_ENERGY: Final = "otel_energy.dynamic.energy"
"""The job's dynamic energy over a span (consequential view: its share above idle), J."""
ATTRIBUTION_VIEW: Final = "otel_energy.attribution.view"
"""``attributional`` or ``consequential`` on ``otel_energy.attributed.energy`` points."""
ATTRIBUTION_METHOD: Final = "otel_energy.attribution.method"
"""How the job's share of a device was found: ``exclusive``, ``cpu_time_share``, ``sm_share``,
``equal_split``, ``slice_share``, ``whole_device`` (no unit)."""

# --- Training structure (spans) -----------------------------------------------------------------

TRAIN_EPOCH: Final = "otel_energy.train.epoch"
"""Epoch index, 0-based (int)."""
TRAIN_STEPS: Final = "otel_energy.train.steps"
"""Optimizer steps in a span (count)."""
TRAIN_STEP: Final = "otel_energy.train.step"
"""Global step number, 1-based (int)."""
TRAIN_FIRST_STEP: Final = "otel_energy.train.first_step"
"""First step (``otel_energy.train.step``) of a ``steps`` span's group (int)."""
TRAIN_LAST_STEP: Final = "otel_energy.train.last_step"
"""Last step of a ``steps`` span's group (int)."""
TRAIN_STEP_DURATION_MIN: Final = "otel_energy.train.step_duration.min"
"""Shortest step of a ``steps`` span's group, s."""
TRAIN_STEP_DURATION_MEAN: Final = "otel_energy.train.step_duration.mean"
"""Mean step duration of a ``steps`` span's group, s."""
TRAIN_STEP_DURATION_MAX: Final = "otel_energy.train.step_duration.max"
"""Longest step of a ``steps`` span's group, s."""
TRAIN_STEPS_ENERGY: Final = "otel_energy.train.steps_energy"
"""Energy of a ``steps`` span's steps themselves, J: the sum of their
``otel_energy.step.energy`` records; ``otel_energy.energy`` less the time between steps."""

TRAIN_GLOBAL_STEP: Final = "otel_energy.train.global_step"
"""Trainer's global step at the end of the run (int)."""
TRAIN_START_STEP: Final = "otel_energy.train.start_step"
"""Global step at the start, non-zero when resumed (int)."""
TRAIN_MAX_STEPS: Final = "otel_energy.train.max_steps"
"""The run's planned optimizer steps (int)."""
TRAIN_NUM_TRAIN_EPOCHS: Final = "otel_energy.train.num_train_epochs"
"""The run's planned epochs (number)."""
TRAIN_GRADIENT_ACCUMULATION_STEPS: Final = "otel_energy.train.gradient_accumulation_steps"
"""Micro-batches per optimizer step (int)."""
TRAIN_PER_DEVICE_TRAIN_BATCH_SIZE: Final = "otel_energy.train.per_device_train_batch_size"
"""Batch size per device (int)."""
TRAIN_MODEL_TYPE: Final = "otel_energy.train.model_type"
"""Model type or LightningModule class name (no unit)."""
TRAIN_PROJECT: Final = "otel_energy.train.project"
"""``CarbonConfig.project_name`` (no unit)."""
TRAIN_REGION: Final = "otel_energy.train.region"
"""``CarbonConfig.region`` (no unit)."""
EVAL_STEPS: Final = "otel_energy.eval.steps"
"""Prediction steps of an evaluate/predict/test span (count)."""
EVAL_SANITY_CHECK: Final = "otel_energy.eval.sanity_check"
"""True on Lightning's validation sanity check (bool)."""
FRAMEWORK: Final = "otel_energy.framework"
"""``lightning`` on spans of ``LightningEnergyCallback`` (no unit)."""
GPU_UTILIZATION: Final = "otel_energy.gpu.utilization"
"""Time-weighted GPU utilization over a span, 1 (0..1)."""
GPU_LOW_UTILIZATION: Final = "otel_energy.gpu.low_utilization"
"""The run's GPUs drew power while mostly idle (bool)."""


EVENT_PREDICTION: Final[str] = "otel_energy.prediction"
"""Span event on the ``train`` span each time the footprint projection is updated."""


def device_type_energy(hw_type: str) -> str:
    """Span attribute of one device type's energy (J): ``otel_energy.gpu.energy`` for ``gpu``."""
    return f"otel_energy.{hw_type}.energy"


# --- Other instrumentations' spans (OTEL_PYTHON_ENERGY_SPANS, docs/any-span.md) --------------

SPAN_ENERGY_SHARE: Final = "otel_energy.share"
"""Fraction of the node's energy over the span's lifetime given to the span, 1 (0..1)."""
SPAN_ENERGY_SPLIT: Final = "otel_energy.split"
"""How overlapping spans shared energy: ``active_time`` or ``output_tokens`` (no unit)."""
ENERGY_PER_OUTPUT_TOKEN: Final = "otel_energy.energy_per_output_token"
"""The span's energy over its ``gen_ai.usage.output_tokens``, J."""
METRIC_SPAN_ENERGY: Final = "otel_energy.span.energy"
"""Histogram of the energy of each annotated span, J (exemplars: the spans)."""
SPAN_KIND: Final = "otel_energy.span.kind"
"""Kind of the annotated span (``server``, ``client``...) on ``otel_energy.span.energy``."""
SPAN_SCOPE: Final = "otel_energy.span.scope"
"""Instrumentation scope name of the annotated span, on ``otel_energy.span.energy``."""


# --- otel-energy run (job span) ----------------------------------------------------------------

COMMAND: Final = "otel_energy.command"
"""The command ``otel-energy run`` ran: its name (``argv[0]``); the whole line, redacted and
truncated to 1000 characters, only with ``OTEL_PYTHON_ENERGY_RECORD_COMMAND_ARGS=true``."""
PROCESS_COMMAND: Final[str] = _process.PROCESS_COMMAND
"""Semantic conventions' ``process.command`` on the job span: the command's ``argv[0]``."""
PROCESS_COMMAND_ARGS: Final[str] = _process.PROCESS_COMMAND_ARGS
"""Semantic conventions' ``process.command_args`` (opt-in there, for the secrets it may hold):
the command's arguments, redacted, only with ``OTEL_PYTHON_ENERGY_RECORD_COMMAND_ARGS=true``."""
COMMAND_EXIT_CODE: Final = "otel_energy.command.exit_code"
"""Its exit status (int)."""
