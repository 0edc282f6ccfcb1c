"""The Prometheus endpoint, scraped for real over HTTP from a running node process."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.cluster import Cluster, wait_until

pytestmark = pytest.mark.slow

SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?P<labels>[^}]*)\})? (?P<value>[-+]?[0-9.eE+-]+|NaN)$"
)
LABEL = re.compile(r'^[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"$')


def parse(text: str) -> dict[str, dict[str, float]]:
    """A strict reading of the text format: TYPE before samples, well-formed labels."""
    families: dict[str, dict[str, float]] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("counter", "gauge")
            typed.add(name)
            families[name] = {}
            continue
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.match(line)
        assert m, f"malformed sample: {line!r}"
        assert m["name"] in typed, f"sample before its TYPE: {line!r}"
        labels = m["labels"] or ""
        for pair in filter(None, re.split(r",(?=[a-zA-Z_])", labels)):
            assert LABEL.match(pair), f"malformed label {pair!r}"
        families[m["name"]][labels] = float(m["value"])
    return families


@pytest.mark.timeout(60)
def test_metrics_endpoint_is_scraped_and_parses(cluster: Cluster) -> None:
    a = cluster.start("a", "--metrics-port", "-1")
    cluster.start("b", "--seed", a.router)
    url = f"http://127.0.0.1:{a.info['metrics_port']}/metrics"

    def scrape() -> dict[str, dict[str, float]]:
        response = httpx.get(url, timeout=5)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        return parse(response.text)

    families = wait_until(
        lambda: (f := scrape())["metamesh_peers"].get('state="alive"', 0) >= 1 and f, 20, "b alive in metrics"
    )
    assert families["metamesh_messages_total"]['direction="sent",kind="heartbeat"'] > 0
    assert families["metamesh_uptime_seconds"][""] > 0
    assert httpx.get(url.replace("/metrics", "/other"), timeout=5).status_code == 404
