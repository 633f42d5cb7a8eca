"""The client commands (submit, status, wait, download, jobs) against a real server."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors.numpy import load_file

from optfb import client_cli
from optfb.spec.presets import PRESETS
from tests.e2e.server import ROOT, Server, server

__all__ = ["server"]  # the module-scoped fixture

pytestmark = pytest.mark.slow

DIVERGES = {**PRESETS["tiny"], "network": {"hidden": [5], "activation": "linear"}}
DIVERGES["inner"] = {**PRESETS["tiny"]["inner"], "lr": 1e6}


def cli(server: Server | None, *argv: str) -> int:
    """Run one client command as `optfb` would, in this process."""
    parser = argparse.ArgumentParser(prog="optfb")
    client_cli.register(parser.add_subparsers(dest="command", required=True))
    url = ["--url", server.url] if server is not None else []
    args = parser.parse_args([*argv, *url])
    return int(args.func(args))


def test_submit_wait_status_download(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(server, "submit", "tiny", "--wait") == 0
    out, err = capsys.readouterr()
    job_id = out.strip()
    uuid.UUID(job_id)  # stdout is the id alone, for scripts
    assert "3/3" in err and f"job {job_id} succeeded" in err

    assert cli(server, "status", job_id) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "succeeded"

    assert cli(server, "download", job_id, "-o", str(tmp_path / "B.npz")) == 0
    assert cli(server, "download", job_id, "-o", str(tmp_path / "B.safetensors")) == 0
    assert cli(server, "download", job_id, "-o", str(tmp_path / "B.txt"), "--format", "json") == 0
    with np.load(tmp_path / "B.npz") as npz:
        from_npz = npz["B2"]
    from_safetensors = load_file(str(tmp_path / "B.safetensors"))["B2"]
    from_json = np.asarray(json.loads((tmp_path / "B.txt").read_text())["B2"]["data"])
    for matrix in (from_npz, from_safetensors, from_json):
        assert matrix.shape == (5, 3) and np.isfinite(matrix).all()
    assert not list(tmp_path.glob("*.part"))


def test_spec_files_and_the_job_list(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump({**PRESETS["tiny"], "name": "from-yaml"}))
    (tmp_path / "spec.json").write_text(json.dumps({**PRESETS["tiny"], "name": "from-json"}))
    ids = []
    for name in ("spec.yaml", "spec.json"):
        assert cli(server, "submit", str(tmp_path / name)) == 0
        ids.append(capsys.readouterr().out.strip())
    for job_id in ids:
        assert cli(server, "wait", job_id, "--interval", "0.2", "--timeout", "90") == 0

    assert cli(server, "jobs", "--status", "succeeded") == 0
    listing = capsys.readouterr().out
    assert "from-yaml" in listing and "from-json" in listing
    assert all(job_id in listing for job_id in ids)


def test_wait_fails_for_a_failed_or_cancelled_job(
    server: Server, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "bad.json").write_text(json.dumps(DIVERGES))
    assert cli(server, "submit", str(tmp_path / "bad.json"), "--wait") == 1
    assert "failed: NonFiniteError: outer step 1" in capsys.readouterr().err

    endless = {**PRESETS["tiny"], "outer": {"steps": 100_000}}
    (tmp_path / "long.json").write_text(json.dumps(endless))
    assert cli(server, "submit", str(tmp_path / "long.json")) == 0
    job_id = capsys.readouterr().out.strip()
    with server.client() as client:
        client.post(f"/v1/jobs/{job_id}/cancel")
    assert cli(server, "wait", job_id, "--timeout", "60") == 1
    assert f"job {job_id} cancelled" in capsys.readouterr().err


def test_errors_show_the_servers_detail(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "typo.json").write_text(json.dumps({**PRESETS["tiny"], "colour": "red"}))
    assert cli(server, "submit", str(tmp_path / "typo.json")) == 1
    assert "422" in (err := capsys.readouterr().err) and "colour" in err

    assert cli(server, "status", str(uuid.uuid4())) == 1
    assert "404" in capsys.readouterr().err

    assert cli(server, "submit", "no-such-preset") == 1
    assert "tiny" in capsys.readouterr().err  # the presets are listed

    (tmp_path / "broken.json").write_text("{")
    assert cli(server, "submit", str(tmp_path / "broken.json")) == 1
    assert "not valid JSON" in capsys.readouterr().err


def test_server_from_the_environment(
    server: Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPTFB_URL", server.url)
    assert cli(None, "jobs", "--limit", "1") == 0
    assert capsys.readouterr().out.startswith("ID")

    monkeypatch.setenv("OPTFB_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    assert cli(None, "jobs") == 1
    assert "cannot reach the server" in capsys.readouterr().err


def test_the_client_does_not_import_torch() -> None:
    code = "import sys, optfb.client_cli; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
