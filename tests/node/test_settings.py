"""One name per setting: flag, TOML key and environment variable agree, and docs/settings.md
is what the generator makes of the definitions."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest

from metamesh.cli.settings_doc import FLAG_ALIASES, NOT_SETTINGS, field_docs, flags_by_dest, parsers, render
from metamesh.errors import ConfigError
from metamesh.node.config import CHOICES, NOT_SETTABLE, PROFILES, SETTINGS, load_config
from metamesh.node.settings import OTHER_ENV, RENAMED, env_name, flag_name

ROOT = Path(__file__).resolve().parents[2]

#: Settings whose flag belongs to ``metamesh coordinator`` rather than ``metamesh node``.
COORDINATOR_ONLY = {
    "meta_interval": "the meta-engine runs in the coordinator only",
    "meta_keepalive": "the meta-engine runs in the coordinator only",
    "reptile_step": "the meta-engine runs in the coordinator only",
    "memory_total": "the insight memory is the coordinator's",
    "memory_per_domain": "the insight memory is the coordinator's",
    "memory_per_client": "the insight memory is the coordinator's",
}


def sample(name: str) -> tuple[str, Any]:
    """A valid value of each setting, as text (flag, variable) and as its TOML/typed value."""
    special: dict[str, tuple[str, Any]] = {
        "seed": ("tcp://10.0.0.2:5556", ("tcp://10.0.0.2:5556",)),
        "peer_networks": ("10.0.0.0/8", ("10.0.0.0/8",)),
        "home": ("/srv/n1", Path("/srv/n1")),
        "keys": ("/srv/n1/keys", Path("/srv/n1/keys")),
        "advertise": ("n1.lan", "n1.lan"),
    }
    if name in special:
        return special[name]
    if name in CHOICES:
        return CHOICES[name][-1], CHOICES[name][-1]
    default = getattr(PROFILES["lan"], name)
    if isinstance(default, bool):
        return "true", True
    if isinstance(default, tuple):
        return "a,b", ("a", "b")
    if isinstance(default, (int, float)):  # the default keeps cross-field rules satisfied
        return str(default), default
    return "x", "x"


def test_the_committed_settings_page_is_what_the_generator_makes() -> None:
    committed = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    assert committed == render(), "run: python -m metamesh.cli.settings_doc docs/settings.md"


def test_every_setting_has_a_description() -> None:
    docs = field_docs()
    assert [name for name in SETTINGS if not docs.get(name)] == []


def test_every_node_flag_is_a_setting_of_the_same_name() -> None:
    node = parsers()["node"]
    for action in node._actions:
        for option in action.option_strings:
            if option in NOT_SETTINGS or option in FLAG_ALIASES:
                continue
            assert option.startswith("--"), option
            assert action.dest in SETTINGS, f"{option} sets {action.dest!r}, which is not a setting"
            assert option == flag_name(action.dest), f"{option} sets {action.dest!r}"


def test_every_setting_is_a_flag_a_toml_key_and_a_variable(tmp_path: Path) -> None:
    node, coordinator = (flags_by_dest(p) for p in parsers().values())
    toml = tmp_path / "node.toml"
    for name in SETTINGS:
        flags = coordinator if name in COORDINATOR_ONLY else node
        assert flag_name(name) in flags.get(name, []), f"{name}: no {flag_name(name)}"
        text, value = sample(name)
        parsed = parsers()["coordinator" if name in COORDINATOR_ONLY else "node"].parse_args(
            [flag_name(name)] if value is True else [flag_name(name), text]
        )
        got = getattr(parsed, name)
        assert (got[0] if isinstance(got, list) else got) in (value, text, Path(text)), name
        if name == "profile":
            assert load_config(env={env_name(name): text}).profile == value
            continue
        assert getattr(load_config(env={env_name(name): text}), name) == value, env_name(name)
        toml_value = f'"{text}"' if isinstance(value, (str, Path)) else text
        if isinstance(value, tuple):
            toml_value = "[" + ", ".join(f'"{v}"' for v in value) + "]"
        toml.write_text(f"[node]\n{name} = {toml_value}\n")
        assert getattr(load_config(path=toml, env={}), name) == value, f"TOML {name}"
    assert set(COORDINATOR_ONLY) <= set(SETTINGS) and set(NOT_SETTABLE).isdisjoint(SETTINGS)


def test_the_names_a_newcomer_tries_work(tmp_path: Path) -> None:
    toml = tmp_path / "node.toml"
    toml.write_text('[node]\nmetrics_port = 9464\nkeys = "/srv/k"\nseed = "tcp://10.0.0.2:5556"\n')
    config = load_config(path=toml, env={"METAMESH_METRICS_PORT": "9465"})
    assert (config.metrics_port, config.keys, config.seed) == (9465, Path("/srv/k"), ("tcp://10.0.0.2:5556",))


def test_an_unknown_key_names_the_closest_and_a_bad_value_what_is_allowed(tmp_path: Path) -> None:
    toml = tmp_path / "node.toml"
    for line, expected in (
        ("metric_port = 1", "unknown setting 'metric_port'; did you mean metrics_port?"),
        ('pub_port = "abc"', "pub_port = 'abc' is not allowed; expected a whole number"),
        ('arm = "x"', "arm = 'x' is not allowed; expected one of 'federated', 'local', 'random'"),
        ("seed = 7", "the learner's random seed is random_seed"),
        ("limits = 1", "limits cannot be set"),
    ):
        toml.write_text(f"[node]\n{line}\n")
        with pytest.raises(ConfigError, match=re.escape(expected)):
            load_config(path=toml, env={})
    with pytest.raises(ConfigError, match=re.escape("METAMESH_BEACON: beacon = 'maybe' is not allowed")):
        load_config(env={"METAMESH_BEACON": "maybe"})


def test_old_names_still_work_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    toml = tmp_path / "node.toml"
    toml.write_text('[node]\nstatus_port = 9464\nseeds = ["tcp://10.0.0.3:5556"]\n')
    with caplog.at_level(logging.WARNING, logger="metamesh.node.config"):
        config = load_config(path=toml, env={"METAMESH_KEYS_DIR": "/srv/k"})
    assert (config.metrics_port, config.seed, config.keys) == (9464, ("tcp://10.0.0.3:5556",), Path("/srv/k"))
    assert {"'status_port' is renamed 'metrics_port'", "'seeds' is renamed 'seed'"} <= {
        m.split(": ", 1)[1].split(";")[0] for m in caplog.messages
    }
    assert any(m.startswith("METAMESH_KEYS_DIR: 'keys_dir' is renamed 'keys'") for m in caplog.messages)
    assert set(RENAMED.values()) <= set(SETTINGS)


def test_an_unknown_variable_is_reported_with_the_closest_name(caplog: pytest.LogCaptureFixture) -> None:
    env = {"METAMESH_METRIC_PORT": "1", "METAMESH_PROFILE": "local", "METAMESH_BENCH_EAGER": "1", "HOME": "/"}
    with caplog.at_level(logging.WARNING, logger="metamesh.node.config"):
        assert load_config(env=env).profile == "local"
    assert caplog.messages == [
        "METAMESH_METRIC_PORT is not a metamesh setting, ignored; did you mean METAMESH_METRICS_PORT?"
    ]


def test_every_metamesh_variable_the_project_reads_is_known() -> None:
    known = {env_name(n) for n in SETTINGS} | {env_name(n) for n in RENAMED} | set(OTHER_ENV)
    used = set()
    for tree in ("metamesh", "bench"):
        for path in (ROOT / tree).rglob("*.py"):
            used |= set(re.findall(r"METAMESH_[A-Z][A-Z_]*[A-Z]", path.read_text(encoding="utf-8")))
    assert used - known - {"METAMESH_"} == set()
