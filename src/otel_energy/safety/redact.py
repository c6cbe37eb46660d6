"""The one redaction of command lines: credential values out, everything else kept.

A command line is recorded in the ledger, the run report (JSON, HTML), the printed summary and,
when opted in, span attributes. Its arguments may carry credentials (``--hub-token=hf_...``,
``HF_TOKEN=... python train.py``, ``https://user:pass@host``). Redaction replaces the *value*
and keeps the name, so the line stays readable and comparable between runs:

- an option whose name holds a credential word, with its value inline (``--hub-token=x``,
  ``-Dpassword=x``) or as the next argument (``--hub-token x``, ``-token x``; the next argument
  is taken as the value unless it is itself an option, ``--...`` or a lone ``-x``);
- a ``NAME=value`` argument with such a name (environment style ``HF_TOKEN=x``, Hydra style
  ``trainer.api_key=x``);
- a ``Name: value`` argument with such a name (an HTTP header, ``-H 'Authorization: Bearer x'``);
- anywhere in any argument: the user information of a URL (``scheme://user:pass@`` keeps the
  user, ``scheme://token@`` is all secret) and query parameters with such names (``?key=x``).

Credential words: ``token``, ``key``, ``secret``, ``password``, ``passwd``, ``pwd``, ``auth``,
``credential`` and ``authorization``/``authentication``, matched on the words of the name
(split at ``-``, ``_``, ``.`` and lower-to-upper case changes), a word also matching when it
ends in one (``apikey``, ``oauth``) or is its plural (``secrets``; not ``tokens``, so
``--max-new-tokens 64`` is kept). Short options are never redacted: ``-p`` is a port, a
password or a plugin depending on the program, and ``-pSECRET`` cannot be told from ``-p8080``.
That is why full arguments leave the process only when opted in (docs/security.md).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

REDACTED = "REDACTED"
"""What replaces a credential (no shell quoting needed, so redacted lines stay copyable)."""

_WORD = re.compile(
    r"[a-z0-9]*(?:token|(?:key|secret|password|passwd|pwd|auth|credential)s?)"
    r"|authorization|authentication|authn|authz"
)
_SPLIT = re.compile(r"[-_.\s]+|(?<=[a-z0-9])(?=[A-Z])")
_ASSIGN = re.compile(r"^(-{0,2}[+~]?[A-Za-z_][A-Za-z0-9_.\-]*)=(.*)$", re.S)
_HEADER = re.compile(r"^([A-Za-z][A-Za-z0-9\-]*)\s*:\s*(\S.*)$", re.S)
# the password runs to the last "@" before the path: "u:p@ss@host" is a password with an "@"
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)([^/@\s:]*)(:[^/\s]*)?@")
_QUERY = re.compile(r"([?&;])([^=&;#\s]+)=([^&;#\s]*)")
_SHORT_OPTION = re.compile(r"^-[A-Za-z]$")
_LONG_OPTION = re.compile(r"^(?:--|-(?=[A-Za-z]{2}))[A-Za-z]")  # --name, and Go/Java's -name


def is_credential_name(name: str) -> bool:
    """Whether an option, variable or header ``name`` holds a credential word."""
    words = _SPLIT.split(name.strip("-+~"))
    return any(_WORD.fullmatch(w.lower()) for w in words if w)


def _in_text(text: str) -> str:
    """``text`` with URL user information and credential query parameters redacted."""

    def userinfo(m: re.Match[str]) -> str:
        user = m.group(2)
        return f"{m.group(1)}{user}:{REDACTED}@" if m.group(3) else f"{m.group(1)}{REDACTED}@"

    def query(m: re.Match[str]) -> str:
        if not is_credential_name(m.group(2)):
            return m.group(0)
        return f"{m.group(1)}{m.group(2)}={REDACTED}"

    return _QUERY.sub(query, _USERINFO.sub(userinfo, text))


def _one(arg: str) -> tuple[str, bool]:
    """One argument redacted, and whether it is an option whose value is the next argument."""
    assign = _ASSIGN.match(arg)
    if assign and is_credential_name(assign.group(1)):
        return f"{assign.group(1)}={REDACTED}", False
    header = _HEADER.match(arg)
    if header and not assign and is_credential_name(header.group(1)):
        return f"{header.group(1)}: {REDACTED}", False
    takes_value = bool(_LONG_OPTION.match(arg)) and not assign and is_credential_name(arg)
    return _in_text(arg), takes_value


def redact_args(args: Sequence[str]) -> list[str]:
    """``args`` (an argv) with every credential value replaced by ``REDACTED``.

    Pure and idempotent; the number and order of arguments are kept.
    """
    out: list[str] = []
    value_next = False
    for arg in args:
        if value_next and not (arg.startswith("--") or _SHORT_OPTION.match(arg)):
            out.append(REDACTED)
            value_next = False
            continue
        redacted, value_next = _one(arg)
        out.append(redacted)
    return out


def redact_command_line(line: str) -> str:
    """A shell-quoted command line redacted (split as the shell would, then joined again).

    A line the shell could not split (an unclosed quote) is split at whitespace instead.
    """
    try:
        return shlex.join(redact_args(shlex.split(line)))
    except ValueError:
        return " ".join(redact_args(line.split()))


__all__ = ["REDACTED", "is_credential_name", "redact_args", "redact_command_line"]
