from __future__ import annotations

import logging

import pytest

from otel_energy.config import SOURCES, ConfigError, EnergyConfig, load_config
from otel_energy.config import variables as ev
from tests.support.paths import DOCS


def test_defaults_from_empty_environment() -> None:
    cfg = load_config({})
    assert cfg == EnergyConfig()
    assert cfg.sample_interval_s == 0.1
    assert cfg.pue == 1.0
    assert cfg.sources == SOURCES and not cfg.sources_explicit
    assert cfg.powercap_root == "/sys/class/powercap"
    assert cfg.intensity.source == "table:owid-ember:world"
    assert 400 < cfg.intensity.g_per_kwh < 560
    assert cfg.history_len == 6001


@pytest.mark.parametrize(
    ("env", "field", "expected"),
    [
        ({ev.OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL: "0.5"}, "sample_interval_s", 0.5),
        ({ev.OTEL_PYTHON_ENERGY_HISTORY_SECONDS: "30"}, "history_s", 30.0),
        ({ev.OTEL_PYTHON_ENERGY_PUE: "1.58"}, "pue", 1.58),
        ({ev.OTEL_PYTHON_ENERGY_CPU_TDP_W: "125"}, "cpu_tdp_w", 125.0),
        ({ev.OTEL_PYTHON_ENERGY_MEMORY_W_PER_GB: "0.3"}, "memory_w_per_gb", 0.3),
        ({ev.OTEL_PYTHON_ENERGY_POWERCAP_ROOT: "/tmp/x"}, "powercap_root", "/tmp/x"),
        ({ev.OTEL_PYTHON_ENERGY_SOURCES: "rapl, nvml"}, "sources", ("rapl", "nvml")),
        ({ev.OTEL_PYTHON_ENERGY_SOURCES: "AUTO"}, "sources", SOURCES),
        ({ev.OTEL_PYTHON_ENERGY_COUNTRY: "fr"}, "country", "fr"),
        ({ev.OTEL_PYTHON_ENERGY_STEP_SPANS: "off"}, "step_span_every", 0),
        ({ev.OTEL_PYTHON_ENERGY_STEP_SPANS: "All"}, "step_span_every", 1),
        ({ev.OTEL_PYTHON_ENERGY_STEP_SPANS: "10"}, "step_span_every", 10),
        ({ev.OTEL_PYTHON_ENERGY_STEP_SPANS: "Auto"}, "step_span_every", 1),
        ({}, "step_span_groups", True),  # the default: short steps share a span per tick
        ({ev.OTEL_PYTHON_ENERGY_STEP_SPANS: " auto "}, "step_span_groups", True),
        ({ev.OTEL_PYTHON_ENERGY_STEP_SPANS: "all"}, "step_span_groups", False),
        ({ev.OTEL_PYTHON_ENERGY_STEP_SPANS: "off"}, "step_span_groups", False),
        ({ev.OTEL_PYTHON_ENERGY_STEP_SPANS: "3"}, "step_span_groups", False),
    ],
)
def test_valid_values(env: dict[str, str], field: str, expected: object) -> None:
    assert getattr(load_config(env), field) == expected


@pytest.mark.parametrize(
    ("name", "value", "hint"),
    [
        (ev.OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL, "-1", "0.001 to 60"),
        (ev.OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL, "0", "0.001 to 60"),
        (ev.OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL, "fast", "0.001 to 60"),
        (ev.OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL, "nan", "0.001 to 60"),
        (ev.OTEL_PYTHON_ENERGY_HISTORY_SECONDS, "0", "1 to 86400"),
        (ev.OTEL_PYTHON_ENERGY_PUE, "0.9", "1 to 10"),
        (ev.OTEL_PYTHON_ENERGY_PUE, "inf", "1 to 10"),
        (ev.OTEL_PYTHON_ENERGY_CARBON_INTENSITY, "lots", "0 to 5000"),
        (ev.OTEL_PYTHON_ENERGY_CARBON_INTENSITY, "-5", "0 to 5000"),
        (ev.OTEL_PYTHON_ENERGY_CPU_TDP_W, "0", "1 to 5000"),
        (ev.OTEL_PYTHON_ENERGY_COUNTRY, "XX", "alpha-2 or alpha-3"),
        (ev.OTEL_PYTHON_ENERGY_COUNTRY, "France", "alpha-2 or alpha-3"),
        (ev.OTEL_PYTHON_ENERGY_SOURCES, "nvml,tpu", "nvml, amd, rapl, estimate"),
        (ev.OTEL_PYTHON_ENERGY_SOURCES, ",", "nvml, amd, rapl, estimate"),
        (ev.OTEL_PYTHON_ENERGY_STEP_SPANS, "0", "'all', 'off' or an integer N >= 1"),
        (ev.OTEL_PYTHON_ENERGY_STEP_SPANS, "some", "'all', 'off' or an integer N >= 1"),
        (ev.OTEL_PYTHON_ENERGY_STEP_SPANS, "grouped", "'auto' (short steps grouped), 'all'"),
        (ev.OTEL_PYTHON_ENERGY_STEP_SPANS, "²", "'all', 'off' or an integer N >= 1"),
        (ev.OTEL_PYTHON_ENERGY_STEP_SPANS, "\uff11\uff10", "'all', 'off' or an integer N >= 1"),
    ],
)
def test_bad_values_name_the_variable_and_valid_values(name: str, value: str, hint: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config({name: value})
    message = str(err.value)
    assert name in message
    lowered = name.endswith(("SOURCES", "STEP_SPANS"))
    assert repr(value.strip().lower() if lowered else value.strip()) in message
    assert hint in message


def test_country_codes_alpha2_and_alpha3_agree() -> None:
    a2 = load_config({ev.OTEL_PYTHON_ENERGY_COUNTRY: "FR"}).intensity
    a3 = load_config({ev.OTEL_PYTHON_ENERGY_COUNTRY: "FRA"}).intensity
    assert a2 == a3
    assert a2.source.startswith("table:owid-ember:FRA:")
    assert a2.g_per_kwh < 100  # French grid is mostly nuclear


def test_override_wins_over_country() -> None:
    cfg = load_config(
        {ev.OTEL_PYTHON_ENERGY_COUNTRY: "PL", ev.OTEL_PYTHON_ENERGY_CARBON_INTENSITY: "123.5"}
    )
    assert cfg.intensity.g_per_kwh == 123.5
    assert cfg.intensity.source == "override"
    assert cfg.country == "PL"


def test_every_variable_is_documented_in_docs() -> None:

    doc = (DOCS / "configuration.md").read_text()
    names = [v for k, v in vars(ev).items() if k.startswith("OTEL_PYTHON_ENERGY_")]
    assert len(names) >= 9
    missing = [n for n in names if f"`{n}`" not in doc]
    assert not missing, f"undocumented variables: {missing}"


def test_a_bad_step_spans_value_is_a_configuration_error_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """ "²".isdigit() is True but int("²") raises: it was a ValueError traceback, exit 1."""
    from otel_energy import cli

    monkeypatch.setenv(ev.OTEL_PYTHON_ENERGY_STEP_SPANS, "²")
    assert cli.main(["devices"]) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err and ev.OTEL_PYTHON_ENERGY_STEP_SPANS in err
    assert "Traceback" not in err


def test_overrides_in_code_get_the_same_rules_and_name_the_field() -> None:
    env = {ev.OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL: "0.5", ev.OTEL_PYTHON_ENERGY_PUE: "1.2"}
    cfg = load_config(env, sample_interval_s=0.25, cpu_tdp_w=None)
    assert (cfg.sample_interval_s, cfg.pue, cfg.cpu_tdp_w) == (0.25, 1.2, None)  # None: env's
    for field, bad, hint in [
        ("sample_interval_s", 0, "of seconds from 0.001 to 60"),
        ("sample_interval_s", -1.0, "of seconds from 0.001 to 60"),
        ("history_s", float("inf"), "of seconds from 1 to 86400"),
        ("pue", 0.5, "from 1 to 10"),
        ("memory_w_per_gb", "lots", "of watts per GB from 0 to 100"),
        ("cpu_tdp_w", True, "of watts from 1 to 5000"),
    ]:
        with pytest.raises(ConfigError) as err:
            load_config({}, **{field: bad})
        assert str(err.value) == (f"{field}={bad!r} is not valid: expected a number {hint}.")
    with pytest.raises(TypeError, match="step_span_every"):
        load_config({}, sample_interval=0.5, step_span_every=3)  # type: ignore[arg-type]


def test_an_override_replaces_its_variable_which_is_then_not_read() -> None:
    """A value given in code wins, even over a variable that holds an invalid value (before,
    the variable was still parsed and its error raised)."""
    env = {
        ev.OTEL_PYTHON_ENERGY_PUE: "0.5",
        ev.OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL: "fast",
        ev.OTEL_PYTHON_ENERGY_COUNTRY: "Atlantis",
        ev.OTEL_PYTHON_ENERGY_CARBON_INTENSITY: "-1",
    }
    cfg = load_config(
        env, pue=1.2, sample_interval_s=0.5, country="FR", carbon_intensity_g_per_kwh=42.0
    )
    assert (cfg.pue, cfg.sample_interval_s, cfg.country) == (1.2, 0.5, "FR")
    assert (cfg.intensity.g_per_kwh, cfg.intensity.source) == (42.0, "override")
    with pytest.raises(ConfigError, match=f"^{ev.OTEL_PYTHON_ENERGY_PUE}='0.5'"):
        load_config({ev.OTEL_PYTHON_ENERGY_PUE: "0.5"}, sample_interval_s=0.5)  # pue is read


def test_country_intensity_and_gpu_overrides() -> None:
    cfg = load_config({"CUDA_VISIBLE_DEVICES": "3, 5"}, country="DE", gpu_ids=[1])
    assert cfg.country == "DE" and cfg.intensity.source.startswith("table:owid-ember:DEU:")
    assert cfg.cuda_visible_devices == "5"  # CUDA ordinal 1 among the visible GPUs
    assert load_config({}, gpu_ids=[0, 2]).cuda_visible_devices == "0,2"
    assert load_config({}, gpu_ids="auto").cuda_visible_devices is None
    # a fixed intensity in code needs no live provider (nor its token)
    live = {ev.OTEL_PYTHON_ENERGY_CARBON_PROVIDER: "electricitymaps"}
    cfg = load_config(live, carbon_intensity_g_per_kwh=300)
    assert cfg.carbon is None and cfg.intensity.g_per_kwh == 300.0
    # with the environment's table, the country in code sets the table row
    assert (
        load_config({}, country="FRA").intensity
        == load_config({ev.OTEL_PYTHON_ENERGY_COUNTRY: "FR"}).intensity
    )


@pytest.mark.parametrize(
    ("name", "bad", "message"),
    [
        ("country", "Atlantis", "Where.country='Atlantis' is not valid: expected an ISO 3166"),
        ("country", 3, "Where.country=3 is not valid: expected an ISO 3166"),
        ("gpu_ids", [0, -1], r"Where.gpu_ids=\[0, -1\] is not valid: expected 'auto' or a list"),
        ("gpu_ids", [True], r"Where.gpu_ids=\[True\] is not valid"),
        (
            "carbon_intensity_g_per_kwh",
            -3,
            "Where.carbon_intensity_g_per_kwh=-3 is not valid: expected a number of gCO2e/kWh"
            " from 0 to 5000",
        ),
    ],
)
def test_override_errors_name_the_callers_label(name: str, bad: object, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{message}"):
        load_config({}, labels={name: f"Where.{name}"}, **{name: bad})


def test_a_misspelt_variable_is_warned_about_once_with_the_closest_name(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``OTEL_PYTHON_ENERGY_CONTRY=FR`` was ignored in silence: the world average was used."""
    from otel_energy.config import unknown

    monkeypatch.setattr(unknown, "_warned", set())  # once per process: start this test afresh
    env = {
        "OTEL_PYTHON_ENERGY_CONTRY": "FR",
        "OTEL_PYTHON_ENERGY_NO_SUCH_THING": "1",
        ev.OTEL_PYTHON_ENERGY_PUE: "1.2",
    }
    with caplog.at_level(logging.WARNING, logger="otel_energy.config"):
        cfg = load_config(env)
        load_config(env)  # a second reader (a callback after the instrumentor) adds nothing
    assert cfg.country is None and cfg.pue == 1.2  # unknown names change nothing else
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert lines == [
        "otel-energy: unknown variable OTEL_PYTHON_ENERGY_CONTRY is ignored; did you mean"
        " OTEL_PYTHON_ENERGY_COUNTRY?",
        "otel-energy: unknown variable OTEL_PYTHON_ENERGY_NO_SUCH_THING is ignored;"
        " docs/configuration.md lists the variables",
    ]


def test_no_known_variable_is_reported_unknown() -> None:
    from otel_energy.config.unknown import KNOWN, unknown_variables

    names = {v for k, v in vars(ev).items() if k.startswith("OTEL_PYTHON_ENERGY_")}
    assert names == KNOWN and len(names) >= 20
    assert unknown_variables(dict.fromkeys(names, "x")) == []
    assert unknown_variables({"OTEL_PYTHON_ENERGY_STEP_SPAN": "off", "OTHER_COUNTRY": "FR"}) == [
        ("OTEL_PYTHON_ENERGY_STEP_SPAN", "OTEL_PYTHON_ENERGY_STEP_SPANS")
    ]


def test_command_args_are_recorded_only_when_asked() -> None:
    name = ev.OTEL_PYTHON_ENERGY_RECORD_COMMAND_ARGS
    assert load_config({}).record_command_args is False
    assert load_config({name: "TRUE"}).record_command_args is True
    assert load_config({name: "false"}).record_command_args is False
    with pytest.raises(ConfigError, match=f"{name}='yes' is not valid: expected 'true' or"):
        load_config({name: "yes"})


@pytest.mark.parametrize(
    "url", ["htps://admin:s3cret@bmc", "https://admin:s3cret@bmc:99999", "ftp://admin:s3cret@bmc"]
)
@pytest.mark.parametrize(
    "variable", ["OTEL_PYTHON_ENERGY_REDFISH_URL", "OTEL_PYTHON_ENERGY_CARBON_API_URL"]
)
def test_an_invalid_url_with_credentials_is_refused_without_showing_them(
    url: str, variable: str
) -> None:
    """A URL that was wrong in another way went to the 'not valid' message with its value."""
    env = {variable: url}
    if variable.endswith("CARBON_API_URL"):
        env |= {"OTEL_PYTHON_ENERGY_CARBON_PROVIDER": "uk"}
    with pytest.raises(ConfigError) as err:
        load_config(env)
    assert variable in str(err.value) and "s3cret" not in str(err.value)
