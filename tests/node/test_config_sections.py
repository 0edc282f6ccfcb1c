"""Settings in sections: every setting in one, --help and docs/settings.md grouped by them, and a
TOML file may give a section's settings in a [node.SECTION] sub-table, layered as flat keys are."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from metamesh.cli.settings_doc import parsers
from metamesh.errors import ConfigError
from metamesh.node.config import SETTINGS, load_config
from metamesh.node.sections import SECTION_TITLES, SECTIONS, by_section, section_of

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_in_exactly_one_section() -> None:
    assert list(SECTIONS) == ["network", "gossip", "learning", "security", "storage", "observability"]
    listed = [name for names in SECTIONS.values() for name in names]
    assert sorted(listed) == sorted(SETTINGS)
    assert len(listed) == len(set(listed))
    assert section_of("metrics_port") == "observability" and section_of("keys") == "security"


def test_help_groups_every_setting_flag_under_its_section() -> None:
    for parser in parsers().values():
        titles = {title: section for section, title in SECTION_TITLES.items()}
        groups = [g for g in parser._action_groups if g.title in titles]
        assert [titles[g.title or ""] for g in groups] == list(SECTIONS)  # in order
        for group in groups:
            for action in group._group_actions:
                assert section_of(action.dest) == titles[group.title or ""], action.option_strings
        others = [a.dest for g in parser._action_groups if g.title not in titles for a in g._group_actions]
        assert not set(others) & set(SETTINGS)


def test_node_help_shows_the_sections(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parsers()["node"].parse_args(["--help"])
    out = capsys.readouterr().out
    positions = [out.index(SECTION_TITLES[s].split(":")[0] + ":") for s in SECTIONS]
    assert positions == sorted(positions)


def test_sub_tables_give_the_same_config_as_flat_keys(tmp_path: Path) -> None:
    flat, nested = tmp_path / "flat.toml", tmp_path / "nested.toml"
    flat.write_text(
        '[node]\nprofile = "local"\nhost = "0.0.0.0"\ndomain = ["math"]\nkeys = "/srv/k"\n'
        'learner = "prompts"\nmetrics_port = 9464\ncheckpoint_interval = 7.0\n'
    )
    nested.write_text(
        '[node]\nlearner = "prompts"\n\n[node.network]\nprofile = "local"\nhost = "0.0.0.0"\n\n'
        '[node.gossip]\ndomain = ["math"]\n\n[node.security]\nkeys = "/srv/k"\n\n'
        "[node.observability]\nmetrics_port = 9464\n\n[node.storage]\ncheckpoint_interval = 7.0\n"
    )
    a, b = load_config(path=flat, env={}), load_config(path=nested, env={})
    assert a == b
    assert (b.profile, b.host, b.metrics_port, b.heartbeat_interval) == ("local", "0.0.0.0", 9464, 0.2)
    assert (
        by_section(b)["network"]["host"] == "0.0.0.0"
        and by_section(b)["storage"]["checkpoint_interval"] == 7.0
    )


def test_a_sub_table_is_layered_below_the_environment_and_the_flags(tmp_path: Path) -> None:
    toml = tmp_path / "node.toml"
    toml.write_text("[node.network]\npub_port = 5001\nrouter_port = 5002\nbeacon_port = 5003\n")
    config = load_config(
        path=toml, env={"METAMESH_ROUTER_PORT": "6002", "METAMESH_BEACON_PORT": "6003"},
        overrides={"beacon_port": 7003},
    )  # fmt: skip
    assert (config.pub_port, config.router_port, config.beacon_port) == (5001, 6002, 7003)


def test_a_misplaced_repeated_or_bad_setting_is_one_line_naming_it(tmp_path: Path) -> None:
    toml = tmp_path / "node.toml"
    for text, expected in (
        ("[node.network]\nkeys = '/k'\n", "keys belongs in [node.security], not [node.network]"),
        (
            "[node]\nhost = 'a'\n[node.network]\nhost = 'b'\n",
            "host is given twice, in [node] and in [node.network]",
        ),
        ("[node]\nnetwork = 3\n", "[node.network] must be a table of settings, got 3"),
        ("[node.network]\nhots = 'a'\n", "unknown setting 'hots'; did you mean host?"),
        ("[node.network]\npub_port = 'abc'\n", "pub_port = 'abc' is not allowed; expected a whole number"),
        ("[node.network]\npub_port = 70000\n", "pub_port 70000 is out of range: a TCP/UDP port, 0 to 65535"),
        ("[node.security]\nmax_clock_skew = 0\n", "max_clock_skew must be > 0, got 0"),
        ("[node.learning]\narm = 'x'\n", "arm = 'x' is not allowed; expected one of 'federated', 'local'"),
    ):
        toml.write_text(text)
        with pytest.raises(ConfigError, match=re.escape(expected)) as caught:
            load_config(path=toml, env={})
        assert "\n" not in str(caught.value)


def test_the_settings_page_lists_each_section_with_its_settings() -> None:
    page = (ROOT / "docs" / "settings.md").read_text()
    for section, names in SECTIONS.items():
        part = page.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
        assert [m for m in re.findall(r"^\| `(\w+)` \|", part, flags=re.M)] == list(names)
    assert isinstance(parsers()["node"], argparse.ArgumentParser)
