"""The reason codes of PROTOCOL.md section 6 and of the implementation are the same set.

Both directions: every ``Reason`` is in the spec's table and is raised or
counted somewhere in ``metamesh/``; every code in the table is a ``Reason``.
"""

from __future__ import annotations

import re
from pathlib import Path

from metamesh.errors import Reason

ROOT = Path(__file__).resolve().parents[2]


def spec_codes() -> set[str]:
    text = (ROOT / "PROTOCOL.md").read_text(encoding="utf-8")
    section = text.split("## 6. Validation and reason codes", 1)[1].split("\n## 7.", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE))


def produced() -> set[str]:
    """Reasons the code raises or counts, anywhere but where the enum is defined: ``Reason.NAME``,
    or the code as a string (learners report what they refuse by its code, ``drain_blame``)."""
    out: set[str] = set()
    for path in (ROOT / "metamesh").rglob("*.py"):
        if path == ROOT / "metamesh" / "errors.py":
            continue
        text = path.read_text(encoding="utf-8")
        out |= {
            Reason[n].value for n in re.findall(r"\bReason\.([A-Z_]+)\b", text) if n in Reason.__members__
        }
        out |= {r.value for r in Reason if f'"{r.value}"' in text}
    return out


def test_every_code_of_the_spec_is_a_reason_and_every_reason_is_in_the_spec() -> None:
    assert spec_codes() == {r.value for r in Reason}


def test_every_reason_is_produced_by_the_code() -> None:
    assert {r.value for r in Reason} - produced() == set()
