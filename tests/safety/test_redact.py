"""The one redaction of command lines (issue 19 item 1): what is redacted, what is kept."""

from __future__ import annotations

import shlex

import pytest

from otel_energy.history.rows import command_line
from otel_energy.safety.redact import (
    REDACTED,
    is_credential_name,
    redact_args,
    redact_command_line,
)

S = "s3cr3t-VALUE"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--hub-token=" + S], ["--hub-token=" + REDACTED]),
        (["--hub-token", S, "--epochs", "2"], ["--hub-token", REDACTED, "--epochs", "2"]),
        (["--api_key", S], ["--api_key", REDACTED]),
        (["--apiKey", S], ["--apiKey", REDACTED]),
        (["--password", "-" + S], ["--password", REDACTED]),  # a value may start with "-"
        (["--db-passwd=" + S], ["--db-passwd=" + REDACTED]),
        (["--client-secret", S], ["--client-secret", REDACTED]),
        (["--credentials", S], ["--credentials", REDACTED]),
        (["--oauth", S], ["--oauth", REDACTED]),
        (["-token", S], ["-token", REDACTED]),  # Go style
        (["-Dpassword=" + S], ["-Dpassword=" + REDACTED]),  # Java system property
        (["HF_TOKEN=" + S, "python"], ["HF_TOKEN=" + REDACTED, "python"]),
        (["trainer.wandb_api_key=" + S], ["trainer.wandb_api_key=" + REDACTED]),  # Hydra
        (["-H", "Authorization: Bearer " + S], ["-H", "Authorization: " + REDACTED]),
        (["https://alice:" + S + "@hub.example/x"], [f"https://alice:{REDACTED}@hub.example/x"]),
        (["https://u:p@" + S + "@h/"], [f"https://u:{REDACTED}@h/"]),  # an "@" in it
        (["git+https://" + S + "@github.com/o/r"], [f"git+https://{REDACTED}@github.com/o/r"]),
        (["--url=https://u:" + S + "@h/p"], [f"--url=https://u:{REDACTED}@h/p"]),
        (["https://h/p?api_key=" + S + "&n=1"], [f"https://h/p?api_key={REDACTED}&n=1"]),
    ],
)
def test_credential_values_are_redacted_and_their_names_kept(
    args: list[str], expected: list[str]
) -> None:
    assert redact_args(args) == expected
    assert redact_args(expected) == expected  # idempotent: redacting twice changes nothing


@pytest.mark.parametrize(
    "args",
    [
        ["python", "train.py", "--epochs", "3", "--lr=3e-4"],
        ["--tokenizer_name", "gpt2", "--max-new-tokens", "64", "--max_tokens=5"],
        ["--author", "Ada", "--keyword", "x", "--output_dir", "out/"],
        ["https://hub.example/models?revision=main", "ssh://host/path"],
        ["--use_auth_token", "--push_to_hub"],  # a flag followed by an option: nothing to redact
        ["-p", "8080"],  # short options are never redacted (docs/security.md)
    ],
)
def test_ordinary_arguments_are_kept(args: list[str]) -> None:
    assert redact_args(args) == args


def test_names_are_matched_on_words() -> None:
    for name in ("hub-token", "HF_TOKEN", "apiKey", "x-api-key", "Authorization", "PASSWD", "pwd"):
        assert is_credential_name(name), name
    for name in ("tokenizer", "max_tokens", "author", "keyword", "monkeypatch"):
        assert not is_credential_name(name), name


def test_a_command_line_is_split_as_the_shell_would() -> None:
    line = shlex.join(["python", "t.py", "--hub-token", S + " with space", "--n", "1"])
    assert redact_command_line(line) == f"python t.py --hub-token {REDACTED} --n 1"
    # an unclosed quote: split at whitespace, the credential still goes
    assert S not in redact_command_line(f"python t.py --hub-token={S} --x 'open")


def test_the_ledger_command_line_of_a_process_is_redacted() -> None:
    """Trainer and process rows record ``sys.orig_argv`` through ``command_line``."""
    line = command_line(["python", "train.py", f"--hub-token={S}", "--epochs", "1"])
    assert S not in line and line == f"python train.py --hub-token={REDACTED} --epochs 1"
