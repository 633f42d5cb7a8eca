"""Client commands of the `optfb` CLI: submit, status, wait, download and list jobs over HTTP.

Talks to the server at --url (or OPTFB_URL, default http://127.0.0.1:8000) with the bearer token in
OPTFB_TOKEN. Imports neither torch nor any server code, so it runs on any machine with the base
install. Exit codes: 0 success; 1 the job failed or was cancelled, or the server refused the
request; 2 bad usage (argparse); 3 `wait --timeout` ran out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
TERMINAL = ("succeeded", "failed", "cancelled")
FORMATS = ("npz", "safetensors", "json")
EXIT_JOB_FAILED = 1
EXIT_TIMEOUT = 3


class ClientError(Exception):
    """A request that did not succeed, with the message a person should see."""


def register(subparsers: Any) -> None:
    """Add the client commands to the `optfb` parser's subparsers; each sets `func`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=None,
        help=f"server URL (default: $OPTFB_URL or {DEFAULT_URL}); token from $OPTFB_TOKEN",
    )

    p = subparsers.add_parser("submit", parents=[common], help="submit an experiment spec to the server")
    p.add_argument("spec", help="a .json / .yaml spec file, or the name of a preset")
    p.add_argument("--wait", action="store_true", help="then wait for the job to finish")
    p.add_argument("--name", help="override the spec's name")
    p.add_argument("--idempotency-key", help="resubmitting with the same key returns the same job")
    p.add_argument("--timeout", type=float, default=None, help="with --wait: give up after seconds")
    p.set_defaults(func=_submit)

    p = subparsers.add_parser("status", parents=[common], help="show a job as JSON")
    p.add_argument("id")
    p.set_defaults(func=_status)

    p = subparsers.add_parser("wait", parents=[common], help="wait for a job, with a progress bar on stderr")
    p.add_argument("id")
    p.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    p.set_defaults(func=_wait)

    p = subparsers.add_parser(
        "download", parents=[common], help="download a finished job's learned feedback matrices"
    )
    p.add_argument("id")
    p.add_argument("-o", "--output", required=True, help="file to write")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="npz, safetensors or json (default: from the file's extension, else npz)",
    )
    p.set_defaults(func=_download)

    p = subparsers.add_parser("jobs", parents=[common], help="list jobs, newest first")
    p.add_argument("--status", choices=("queued", "running", *TERMINAL), default=None)
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--cursor", default=None, help="continue a listing from its next_cursor")
    p.set_defaults(func=_jobs)


# --- HTTP -------------------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> httpx.Client:
    url = (args.url or os.environ.get("OPTFB_URL") or DEFAULT_URL).rstrip("/")
    headers = {"Accept": "application/json, application/problem+json"}
    token = os.environ.get("OPTFB_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Client(base_url=url, headers=headers, timeout=httpx.Timeout(30.0, connect=10.0))


def _problem(response: httpx.Response) -> str:
    """The message of an error response: the problem+json `detail` (RFC 9457) when there is one."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        title = body.get("title") or response.reason_phrase
        detail = body.get("detail")
        if isinstance(detail, list):  # a framework-style list of field errors
            detail = "; ".join(
                f"{'.'.join(str(p) for p in d.get('loc', ()))}: {d.get('msg')}"
                if isinstance(d, dict)
                else str(d)
                for d in detail
            )
        if detail:
            return f"{response.status_code} {title}: {detail}"
        return f"{response.status_code} {title}"
    text = response.text.strip()[:500]
    return f"{response.status_code} {response.reason_phrase}" + (f": {text}" if text else "")


def _request(client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    try:
        response = client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise ClientError(f"cannot reach the server at {client.base_url}: {exc}") from exc
    if response.status_code >= 400:
        raise ClientError(_problem(response))
    return response


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _err(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _run(handler: Any, args: argparse.Namespace) -> int:
    try:
        with _client(args) as client:
            return int(handler(client, args))
    except ClientError as exc:
        _err(f"optfb: {exc}")
        return 1


# --- commands ---------------------------------------------------------------------------------


def load_spec(source: str) -> dict[str, Any]:
    """A spec from a .json / .yaml file or a preset name, as a plain dict (the server validates)."""
    path = Path(source)
    if path.suffix.lower() in (".json", ".yaml", ".yml") or path.exists():
        try:
            text = path.read_text()
        except OSError as exc:
            raise ClientError(f"cannot read spec file {source}: {exc.strerror}") from exc
        try:
            if path.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
        except ValueError as exc:  # json.JSONDecodeError and yaml.YAMLError
            raise ClientError(f"{source} is not valid JSON/YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ClientError(f"{source} must hold one mapping (a JSON object), not {type(data).__name__}")
        return data
    from optfb.spec.presets import PRESETS

    if source in PRESETS:
        return json.loads(json.dumps(PRESETS[source]))  # a deep copy
    raise ClientError(
        f"{source!r} is neither a spec file (.json/.yaml) nor a preset; presets: {', '.join(sorted(PRESETS))}"
    )


def _submit(args: argparse.Namespace) -> int:
    return _run(_submit_with, args)


def _submit_with(client: httpx.Client, args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    if args.name:
        spec["name"] = args.name
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else {}
    job = _request(client, "POST", "/v1/jobs", json=spec, headers=headers).json()
    _out(str(job["id"]))
    if not args.wait:
        return 0
    return _wait_for(client, job["id"], timeout=args.timeout, interval=1.0)


def _status(args: argparse.Namespace) -> int:
    return _run(_status_with, args)


def _status_with(client: httpx.Client, args: argparse.Namespace) -> int:
    _out(json.dumps(_get_job(client, args.id), indent=2))
    return 0


def _get_job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    return _request(client, "GET", f"/v1/jobs/{job_id}").json()


def _wait(args: argparse.Namespace) -> int:
    return _run(lambda client, a: _wait_for(client, a.id, timeout=a.timeout, interval=a.interval), args)


def _wait_for(client: httpx.Client, job_id: str, *, timeout: float | None, interval: float) -> int:
    bar = _ProgressBar(sys.stderr)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        job = _get_job(client, job_id)
        bar.show(job)
        status = job.get("status")
        if status in TERMINAL:
            bar.close()
            if status == "succeeded":
                _err(f"job {job_id} succeeded")
                return 0
            reason = f": {job['error']}" if job.get("error") else ""
            _err(f"job {job_id} {status}{reason}")
            return EXIT_JOB_FAILED
        if deadline is not None and time.monotonic() >= deadline:
            bar.close()
            _err(f"job {job_id} is still {status} after {timeout:g} s")
            return EXIT_TIMEOUT
        time.sleep(max(0.05, interval))


class _ProgressBar:
    """One redrawn line on a terminal; otherwise a line whenever the status or the tenth changes."""

    WIDTH = 30

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.last: tuple[Any, int] | None = None
        self.drawn = False

    def show(self, job: dict[str, Any]) -> None:
        progress = job.get("progress") or {}
        step, total = progress.get("outer_step") or 0, progress.get("outer_steps") or 0
        fraction = progress.get("fraction")
        if fraction is None:
            fraction = step / total if total else 0.0
        filled = int(round(self.WIDTH * min(max(fraction, 0.0), 1.0)))
        eta = progress.get("eta_seconds")
        eta_text = f" eta {_duration(eta)}" if eta is not None and job["status"] == "running" else ""
        line = (
            f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {step}/{total} "
            f"{100 * fraction:3.0f}% {job['status']}{eta_text}"
        )
        if self.tty:
            self.stream.write("\r" + line.ljust(72))
            self.drawn = True
        else:
            key = (job["status"], int(10 * fraction))
            if key != self.last:
                self.stream.write(line + "\n")
                self.last = key
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _download(args: argparse.Namespace) -> int:
    return _run(_download_with, args)


def _download_with(client: httpx.Client, args: argparse.Namespace) -> int:
    output = Path(args.output)
    fmt = args.format or {".safetensors": "safetensors", ".json": "json"}.get(output.suffix.lower(), "npz")
    response = _request(client, "GET", f"/v1/jobs/{args.id}/feedback", params={"format": fmt})
    tmp = output.with_name(output.name + ".part")
    tmp.write_bytes(response.content)
    tmp.replace(output)  # never leave a half-written file under the final name
    _err(f"wrote {output} ({fmt}, {len(response.content)} bytes)")
    return 0


def _jobs(args: argparse.Namespace) -> int:
    return _run(_jobs_with, args)


def _jobs_with(client: httpx.Client, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.status:
        params["status"] = args.status
    if args.cursor:
        params["cursor"] = args.cursor
    page = _request(client, "GET", "/v1/jobs", params=params).json()
    rows = [("ID", "STATUS", "PROGRESS", "CREATED", "NAME")]
    for job in page.get("items", []):
        progress = job.get("progress") or {}
        rows.append(
            (
                str(job["id"]),
                job["status"],
                f"{progress.get('outer_step', 0)}/{progress.get('outer_steps', 0)}",
                str(job.get("created_at") or "")[:19],
                job.get("name") or "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)]
        _out("  ".join([*cells, row[4]]))
    if page.get("next_cursor"):
        _err(f"more: optfb jobs --cursor {page['next_cursor']}")
    return 0
