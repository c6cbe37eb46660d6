"""Every environment variable otel-energy reads: one constant each.

The docstring under each constant is the reference text; ``docs/configuration.md`` repeats it and a
test checks that the two stay in step.
"""

OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL = "OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL"
"""Seconds between two hardware reads by the sampler thread.

Default ``0.1``; valid ``0.001``-``60``.

0.1 s matches the ~100 ms refresh of the NVML counters on A100/H100, keeps RAPL reads far inside the
shortest counter wrap (~4 min on AMD EPYC at full load) and costs well under 0.1% of one core.
"""

OTEL_PYTHON_ENERGY_HISTORY_SECONDS = "OTEL_PYTHON_ENERGY_HISTORY_SECONDS"
"""How far back (s) the sampler keeps samples for window queries.

Default ``600``; valid ``1``-``86400``.

Memory is bounded by ``HISTORY_SECONDS / SAMPLE_INTERVAL`` samples, whatever the run length,
and never more than ``config.MAX_HISTORY_SAMPLES`` (100,000; a warning says when this shortens
the history asked for).
"""

OTEL_PYTHON_ENERGY_SOURCES = "OTEL_PYTHON_ENERGY_SOURCES"
"""Which sensors to use: ``auto`` (default) or a comma list of ``nvml``, ``amd``, ``rapl``,
``estimate``, ``hwmon``, ``redfish``, ``ipmi`` (``amd``: AMD GPUs through ROCm's ``amdsmi``, the
optional extra ``amd``; the last three are whole-node meters, ``redfish`` needs
``OTEL_PYTHON_ENERGY_REDFISH_URL``).

With ``auto`` missing hardware is skipped quietly (one log line) and CPU/memory fall back to an
estimate; a source named explicitly that finds nothing is logged as an error.
"""

OTEL_PYTHON_ENERGY_POWERCAP_ROOT = "OTEL_PYTHON_ENERGY_POWERCAP_ROOT"
"""Root of the Linux powercap tree holding the RAPL zones. Default ``/sys/class/powercap``."""

OTEL_PYTHON_ENERGY_CPU_TDP_W = "OTEL_PYTHON_ENERGY_CPU_TDP_W"
"""CPU thermal design power (W) used by the estimate when there is no RAPL counter.

Default: 5 W per logical CPU seen by the process (a rough middle between server parts, ~2-4 W per
thread, and desktop parts, ~4-8 W). Set it to your CPU's TDP for a better estimate.
"""

OTEL_PYTHON_ENERGY_MEMORY_W_PER_GB = "OTEL_PYTHON_ENERGY_MEMORY_W_PER_GB"
"""Memory power model for the estimate, W per GB of used memory.

Default ``0.375`` (Eco2AI's model).
"""

OTEL_PYTHON_ENERGY_COUNTRY = "OTEL_PYTHON_ENERGY_COUNTRY"
"""ISO 3166 alpha-2 or alpha-3 code of the country whose grid carbon intensity is used (``FR``).

Unset: the generation-weighted world average of the bundled table.
"""

OTEL_PYTHON_ENERGY_CARBON_INTENSITY = "OTEL_PYTHON_ENERGY_CARBON_INTENSITY"
"""Grid carbon intensity override in gCO2e/kWh (a number >= 0). Wins over the country table."""

OTEL_PYTHON_ENERGY_STEP_SPANS = "OTEL_PYTHON_ENERGY_STEP_SPANS"
"""Which optimizer steps get a span: ``all`` (default), ``off``, or an integer N (every Nth step).

Run, epoch, evaluation and prediction spans always exist; the per-step energy histogram records
every step whatever this says.
"""

OTEL_PYTHON_ENERGY_FLUSH_TIMEOUT = "OTEL_PYTHON_ENERGY_FLUSH_TIMEOUT"
"""The most time (s) our telemetry may hold the program up to leave: at the end of training and at
interpreter exit.

Default ``3``; valid ``0``-``600``.

At the end of each recording (``train()``, ``fit()``, an ``EnergyMeter``), the spans are handed to
the exporters and the tracer and meter providers are flushed, waiting at most this long, so that
the run span and the gauges leave with the run (not 60 s later, or at shutdown). At exit, the
providers' shutdown is bounded by it too; past it, one line says how many spans were dropped.
"""

OTEL_PYTHON_ENERGY_RUN_FILE = "OTEL_PYTHON_ENERGY_RUN_FILE"
"""Path of the JSON-lines file the ``otel_energy_file`` span exporter appends to.

``otel-energy run`` sets it (with ``OTEL_TRACES_EXPORTER`` including ``otel_energy_file``) to
collect the command's run, epoch and evaluation spans without any collector. Step spans are not
written there (they go to OTLP when an endpoint is set).
"""

OTEL_PYTHON_ENERGY_CARBON_PROVIDER = "OTEL_PYTHON_ENERGY_CARBON_PROVIDER"
"""Where grid carbon intensity comes from: ``table`` (default, annual per country),
``electricitymaps``, ``watttime`` (marginal) or ``uk`` (Great Britain, no key).

Live providers are refreshed on a background thread and fall back to their last good value, then
to the table. ``OTEL_PYTHON_ENERGY_CARBON_INTENSITY`` overrides everything.
"""

OTEL_PYTHON_ENERGY_ZONE = "OTEL_PYTHON_ENERGY_ZONE"
"""Grid zone of the live provider: an Electricity Maps zone (``DE``, ``US-CAL-CISO``) or a
WattTime region (``CAISO_NORTH``). Or give ``OTEL_PYTHON_ENERGY_LATITUDE``/``LONGITUDE``."""

OTEL_PYTHON_ENERGY_LATITUDE = "OTEL_PYTHON_ENERGY_LATITUDE"
"""Latitude (degrees, -90 to 90) for a live provider, instead of a zone."""

OTEL_PYTHON_ENERGY_LONGITUDE = "OTEL_PYTHON_ENERGY_LONGITUDE"
"""Longitude (degrees, -180 to 180) for a live provider, instead of a zone."""

OTEL_PYTHON_ENERGY_ELECTRICITYMAPS_TOKEN = "OTEL_PYTHON_ENERGY_ELECTRICITYMAPS_TOKEN"
"""Electricity Maps API token (sent as the ``auth-token`` header; never logged).

Visible ASCII only: a space, newline or other control character is a configuration error that
names the variable but never shows the value.
"""

OTEL_PYTHON_ENERGY_WATTTIME_USERNAME = "OTEL_PYTHON_ENERGY_WATTTIME_USERNAME"
"""WattTime account user name."""

OTEL_PYTHON_ENERGY_WATTTIME_PASSWORD = "OTEL_PYTHON_ENERGY_WATTTIME_PASSWORD"
"""WattTime account password (used only for ``/login``; never logged)."""

OTEL_PYTHON_ENERGY_CARBON_API_URL = "OTEL_PYTHON_ENERGY_CARBON_API_URL"
"""Base URL of the live provider's API, for a proxy or a test server.

Default: the provider's own. Valid: an ``http://`` or ``https://`` URL with a host and without
``user:password@``. Redirects are followed within its origin (scheme, host, port) only.
"""

OTEL_PYTHON_ENERGY_CACHE_DIR = "OTEL_PYTHON_ENERGY_CACHE_DIR"
"""Where the last good live intensity is kept across restarts. Default ``~/.cache/otel-energy``.

Unwritable or full: one WARNING per failing spell; the live value is still used.
"""

OTEL_PYTHON_ENERGY_PUE = "OTEL_PYTHON_ENERGY_PUE"
"""Power usage effectiveness of the data centre, a number >= 1.0. Default ``1.0`` (no overhead)."""

OTEL_PYTHON_ENERGY_JOB_ID = "OTEL_PYTHON_ENERGY_JOB_ID"
"""The id of the distributed job this process belongs to (any text; must be unique per job).

Put on every metric point and span as ``otel_energy.job.id``; in a distributed run it also seeds
the job's one trace (docs/distributed.md). Unset: taken from the launcher (``SLURM_JOB_ID``,
``TORCHELASTIC_RUN_ID`` unless ``none``, ``PBS_JOBID``, ``LSB_JOBID``, ``PMIX_NAMESPACE``).
"""

OTEL_PYTHON_ENERGY_PREDICT_AFTER_STEPS = "OTEL_PYTHON_ENERGY_PREDICT_AFTER_STEPS"
"""When the Trainer callback projects the run's total energy, CO2e and duration.

``epoch`` (default): at the end of each epoch, the first after epoch 1; an integer N >= 1: every N
optimizer steps as well (for long epochs); ``off``: never.
"""

OTEL_PYTHON_ENERGY_LEDGER = "OTEL_PYTHON_ENERGY_LEDGER"
"""Path of the SQLite run ledger that every measured run appends a row to, or ``off``.

Default ``$XDG_DATA_HOME/otel-energy/runs.sqlite`` (``~/.local/share/otel-energy/runs.sqlite``).
``otel-energy history`` and ``otel-energy report`` read it.
"""

OTEL_PYTHON_ENERGY_RECORD_COMMAND_ARGS = "OTEL_PYTHON_ENERGY_RECORD_COMMAND_ARGS"
"""Whether the ``job`` span of ``otel-energy run`` carries the command's arguments.

Default ``false``: the span names the command (``process.command``, ``otel_energy.command``:
its ``argv[0]``) and no argument, as the semantic conventions make ``process.command_args``
opt-in (arguments carry secrets). ``true``: ``process.command_args`` and the whole line in
``otel_energy.command``, with credential values redacted (docs/security.md says which).
"""

OTEL_PYTHON_ENERGY_LEDGER_RUN_ID = "OTEL_PYTHON_ENERGY_LEDGER_RUN_ID"
"""Set by ``otel-energy run`` in its command's environment: the ledger row of that run.

A process that sees it writes no ledger row of its own (the parent writes one for the whole
command, with its exit status and the whole node's energy). Not meant to be set by hand.
"""

OTEL_PYTHON_ENERGY_HWMON_ROOT = "OTEL_PYTHON_ENERGY_HWMON_ROOT"
"""Root of the Linux hwmon tree searched for a whole-node meter. Default ``/sys/class/hwmon``.

The ACPI power meter (``power1_average``) or the input channels of PMBus power supplies
(``power*_input``/``energy*_input`` labelled ``pin``/``ein``) become ``hw.host.energy``.
"""

OTEL_PYTHON_ENERGY_REDFISH_URL = "OTEL_PYTHON_ENERGY_REDFISH_URL"
"""The BMC's Redfish service (``https://bmc.example``) or a chassis power resource's URL.

Unset: no Redfish. Valid: an ``http://`` or ``https://`` URL with a host and without
``user:password@``. Redirects are followed within its origin only. The BMC is read on its own
thread every ``OTEL_PYTHON_ENERGY_REDFISH_INTERVAL`` s, never by the sampler. HTTPS certificates are
verified: for a BMC's own CA set ``SSL_CERT_FILE`` to a bundle that holds it.
"""

OTEL_PYTHON_ENERGY_REDFISH_USERNAME = "OTEL_PYTHON_ENERGY_REDFISH_USERNAME"
"""Redfish user name (sent only in the Basic ``Authorization`` header; never logged)."""

OTEL_PYTHON_ENERGY_REDFISH_PASSWORD = "OTEL_PYTHON_ENERGY_REDFISH_PASSWORD"
"""Redfish password (sent only in the Basic ``Authorization`` header; never logged)."""

OTEL_PYTHON_ENERGY_REDFISH_INTERVAL = "OTEL_PYTHON_ENERGY_REDFISH_INTERVAL"
"""Seconds between two reads of the BMC (Redfish and IPMI). Default ``1``; valid ``0.5``-``60``.

BMCs refresh their power reading every 1-10 s; reading faster only loads the BMC. 1 s meets the
>= 1 Hz sample-rate check (docs/accuracy.md).
"""

OTEL_PYTHON_ENERGY_GPU_SYNC = "OTEL_PYTHON_ENERGY_GPU_SYNC"
"""``on``: call ``torch.cuda.synchronize()`` at each epoch and evaluation boundary, so that the
boundary is taken when the GPU has finished the work queued before it. Default ``off``.

Cost: one wait for the GPU's queue to drain per boundary (the time of the work still queued,
typically a few milliseconds; the next launch starts from an empty queue). No effect without
torch or CUDA. Step boundaries are never synchronized (that would cost every step).
"""

OTEL_PYTHON_ENERGY_SHARED_SAMPLING = "OTEL_PYTHON_ENERGY_SHARED_SAMPLING"
"""``on`` (default): where several local ranks of one job run on a node (``LOCAL_WORLD_SIZE`` or
the launcher's equivalent), one process reads the hardware for all of them and the
others fold its published samples (docs/distributed.md, "One sampler per node"); each rank still
reports only its own devices. ``off``: every rank reads its own devices.
"""

OTEL_PYTHON_ENERGY_ATTRIBUTION = "OTEL_PYTHON_ENERGY_ATTRIBUTION"
"""Which processes are the job whose share of the node is reported (docs/attribution.md):
``auto`` (default: the process's own cgroup where it has one, a Kubernetes pod, a SLURM job step
or a container; else the process and its descendants), ``process`` (the process tree), ``cgroup``
(the cgroup, else the tree) or ``off`` (every device charged whole, as measured).

The node's figures (``hw.energy``, ``total.energy_j``) are the same whatever this says.
"""

OTEL_PYTHON_ENERGY_IDLE_POWER_W = "OTEL_PYTHON_ENERGY_IDLE_POWER_W"
"""Idle power of each device type (W per device), ``cpu=10,memory=2,gpu=60``: what a device draws
doing nothing. Dynamic energy = measured - idle x time, never below zero.

Unset: the idle power earlier runs learned on this machine (kept per device in
``OTEL_PYTHON_ENERGY_CACHE_DIR``), else none (all energy counts as dynamic, and the report says
so). Valid types ``cpu``, ``memory``, ``gpu``; watts 0-5000.
"""

OTEL_PYTHON_ENERGY_SPANS = "OTEL_PYTHON_ENERGY_SPANS"
"""Other instrumentations' spans to put energy on (zero-code): a comma list of span kinds
(``server``, ``client``, ``internal``, ``producer``, ``consumer``) and instrumentation scope names
(``opentelemetry.instrumentation.fastapi``). Default: off.

Overlapping spans share the energy of each moment (by active time, or by
``gen_ai.usage.output_tokens`` when every overlapping span has it); a selected span reaches the
exporter at most ``OTEL_PYTHON_ENERGY_SPANS_MAX_DELAY`` plus two sample intervals after it ends.
docs/any-span.md.
"""

OTEL_PYTHON_ENERGY_SPANS_MAX_DELAY = "OTEL_PYTHON_ENERGY_SPANS_MAX_DELAY"
"""How long (s) an annotated span may be held waiting for running spans that overlap it (their
``gen_ai.usage.output_tokens`` is known only when they end). Default ``5``; valid ``0``-``3600``.

A span that overlaps one running for longer shares those stretches by active time instead.
"""
