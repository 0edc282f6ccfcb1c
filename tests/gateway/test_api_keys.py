"""`metamesh keys api` makes a key a gateway admits, printed once, in a file only its owner reads."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest

from metamesh.cli import exitcodes
from metamesh.cli.main import main
from metamesh.gateway.security import load_keys_file
from tests.gateway.conftest import StartGateway

pytestmark = pytest.mark.timeout(60)


def make_key(path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["keys", "api", "--file", str(path), "--name", name])
    return code, capsys.readouterr().out.strip()


async def test_keys_api_makes_a_key_the_gateway_admits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], gateways: StartGateway
) -> None:
    path = tmp_path / "api-keys"
    code, key = make_key(path, "app1", capsys)
    assert code == exitcodes.OK and key.startswith("mm-") and len(key) > 30
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    code2, key2 = make_key(path, "app2", capsys)
    assert code2 == exitcodes.OK and key2 != key
    assert load_keys_file(path) == {key: "app1", key2: "app2"}
    assert make_key(path, "app1", capsys)[0] == exitcodes.CONFIG  # a name is listed once
    assert make_key(path, "two words", capsys)[0] == exitcodes.CONFIG
    assert load_keys_file(path) == {key: "app1", key2: "app2"}

    _, gw = await gateways("a", keys_file=path)
    base = f"http://127.0.0.1:{gw.port}/v1"
    async with httpx.AsyncClient() as client:
        ok = await client.get(f"{base}/models", headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200
        wrong = await client.get(f"{base}/models", headers={"Authorization": f"Bearer {key}x"})
        assert wrong.status_code == 401
