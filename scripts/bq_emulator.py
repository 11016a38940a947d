#!/usr/bin/env python3
"""A local BigQuery emulator (PyPI ``bqemulator`` 1.4.0) for tests through the official client.

bqemulator's dependencies (sqlglot<30.12, its own duckdb, grpc-tools, ...) clash with the main
stack, so it lives in its own venv, ``.venv-bqemu/`` at the repo root, built on first use:

* ``ensure_venv(path)`` creates the venv (``uv`` from the main venv or PATH when there is one, else
  ``python -m venv`` + pip), installs the pinned packages, installs DuckDB's ``spatial`` extension
  offline from the ``duckdb-extension-spatial`` wheel, and writes a stamp: a second call is instant.
* ``start(port=None, project="dm-test")`` runs ``bqemulator start`` as a subprocess on a free
  127.0.0.1 port, waits for ``/readyz`` and returns an :class:`Emulator` handle
  (``.endpoint``, ``.project``, ``.process``, ``.stop()``, ``.kill()``, ``.restart()``).

Offline extension handling (why ``HOME`` is overridden): bqemulator's engine runs
``INSTALL spatial; LOAD spatial`` at startup and refuses to start if that fails. ``INSTALL`` is a
no-op (no network) when the extension is already in DuckDB's extension directory, which defaults
to ``$HOME/.duckdb/extensions/v<duckdb version>/<platform>/``. So the venv build runs
``INSTALL '<wheel's spatial.duckdb_extension>'`` with ``HOME=<venv>/duckdb-home``, and the
emulator runs with the same ``HOME``: nothing is written to the real home and nothing is fetched.
The emulator also tries ``INSTALL avro`` (best effort) unless ``BQEMU_ENABLE_FORMAT_EXTENSIONS``
is false; we set it false so it never reaches for the network (Avro load/extract jobs then answer
"unsupported").

The venv path defaults to ``.venv-bqemu`` (or ``$DM_BQEMU_VENV``); relative paths are under the
repo root. A lock file ``<venv>.lock`` beside it serialises concurrent builds.

Data: the default is ``--ephemeral`` (DuckDB ``:memory:``): a stop loses everything. Pass
``data_dir=...`` for ``--data-dir DIR`` (persistent, ``DIR/bqemulator.duckdb``): datasets, tables
and rows survive a stop/start, including a SIGKILL.

Manual use::

    python scripts/bq_emulator.py --start [--port 9050] [--project dm-test] [--data-dir DIR]
    python scripts/bq_emulator.py --ensure          # just build the venv

Only the standard library is used, so any Python >= 3.10 can import this file.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VENV = os.environ.get("DM_BQEMU_VENV", ".venv-bqemu")  # env override, e.g. a shared venv
PACKAGES = ("bqemulator==1.4.0", "duckdb==1.5.5", "duckdb-extension-spatial==1.5.5", "numpy")
STAMP_NAME = ".dm-bqemu-stamp.json"
DUCKDB_HOME = "duckdb-home"
DEFAULT_PROJECT = "dm-test"
MIN_PYTHON = (3, 11)  # bqemulator 1.4.0: Requires-Python >=3.11 (uses enum.StrEnum)

# Run inside the emulator venv: put the wheel's spatial extension into DuckDB's extension dir
# (under $HOME, which the caller points into the venv), then prove an offline INSTALL+LOAD works
# exactly as bqemulator's engine does it.
_SPATIAL_INSTALL = r"""
import pathlib, duckdb, duckdb_extension_spatial
root = pathlib.Path(duckdb_extension_spatial.__file__).parent
files = sorted(root.glob("extensions/*/spatial.duckdb_extension"))
if not files:
    raise SystemExit(f"no spatial.duckdb_extension under {root}")
con = duckdb.connect()
con.execute(f"INSTALL '{files[-1]}'")
con.close()
con = duckdb.connect()
con.execute("INSTALL spatial")
con.execute("LOAD spatial")
assert con.execute("SELECT ST_AsText(ST_Point(1, 2))").fetchone()[0] == "POINT (1 2)"
path = con.execute(
    "SELECT install_path FROM duckdb_extensions() WHERE extension_name = 'spatial'"
).fetchone()[0]
print(path)
"""


class EmulatorError(RuntimeError):
    """The venv could not be built or the emulator did not come up."""


# --------------------------------------------------------------------------------------------
# venv
# --------------------------------------------------------------------------------------------


def _resolve(path: str | os.PathLike[str]) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else (REPO_ROOT / p)


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _find_uv() -> str | None:
    """``uv`` next to the running interpreter, in the main venv (``.venv``), or on PATH."""
    candidates = [Path(sys.prefix) / "bin" / "uv", REPO_ROOT / ".venv" / "bin" / "uv"]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("uv")


def _base_python() -> str:
    """An interpreter new enough for bqemulator: this one, else python3.13/3.12/3.11 on PATH."""
    if sys.version_info[:2] >= MIN_PYTHON:
        return sys.executable
    for name in ("python3.13", "python3.12", "python3.11"):
        found = shutil.which(name)
        if found:
            return found
    raise EmulatorError(
        f"bqemulator needs Python >= {'.'.join(map(str, MIN_PYTHON))}; "
        f"running {sys.version.split()[0]} and found no python3.11+ on PATH"
    )




def _stamp_ok(venv: Path) -> bool:
    stamp = venv / STAMP_NAME
    if not (stamp.is_file() and venv_python(venv).exists() and (venv / "bin" / "bqemulator").exists()):
        return False
    try:
        data = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    return data.get("packages") == list(PACKAGES) and Path(str(data.get("spatial", ""))).is_file()


def _run(cmd: list[str], *, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if result.returncode != 0:
        raise EmulatorError(
            f"command failed ({result.returncode}): {' '.join(cmd)}\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result.stdout


@contextlib.contextmanager
def _file_lock(lock_path: Path):
    """Serialise venv builds between processes (parallel pytest sessions, a CLI run)."""
    import fcntl

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_venv(path: str | os.PathLike[str] = DEFAULT_VENV, *, quiet: bool = True) -> Path:
    """Build (once) the emulator venv at ``path`` (relative paths are under the repo root).

    Returns the venv directory. Raises :class:`EmulatorError` when it cannot be built.
    """
    venv = _resolve(path)
    if _stamp_ok(venv):
        return venv
    with _file_lock(venv.with_name(venv.name + ".lock")):
        if _stamp_ok(venv):  # another process built it while we waited
            return venv
        started = time.monotonic()
        if venv.exists():
            if not (venv / "pyvenv.cfg").exists() and any(venv.iterdir()):
                raise EmulatorError(f"{venv} exists and is not a venv; refusing to replace it")
            shutil.rmtree(venv)
        base = _base_python()
        uv = _find_uv()
        env = dict(os.environ, UV_PYTHON_DOWNLOADS="never")
        log = (lambda msg: None) if quiet else (lambda msg: print(f"bq_emulator: {msg}", file=sys.stderr))
        if uv:
            log(f"creating {venv} with uv ({uv})")
            _run([uv, "venv", "-q", "--python", base, str(venv)], env=env)
            _run([uv, "pip", "install", "-q", "--python", str(venv_python(venv)), *PACKAGES], env=env)
        else:
            log(f"creating {venv} with venv + pip")
            _run([base, "-m", "venv", str(venv)], env=env)
            _run([str(venv_python(venv)), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                  *PACKAGES], env=env)
        duckdb_home = venv / DUCKDB_HOME
        duckdb_home.mkdir(exist_ok=True)
        spatial = _run([str(venv_python(venv)), "-c", _SPATIAL_INSTALL],
                       env=dict(os.environ, HOME=str(duckdb_home)), timeout=120).strip().splitlines()[-1]
        stamp = dict(packages=list(PACKAGES), python=base, spatial=spatial, built_seconds=round(time.monotonic() - started, 1),
                     installer="uv" if uv else "pip")
        (venv / STAMP_NAME).write_text(json.dumps(stamp, indent=2) + "\n")
        log(f"ready in {stamp['built_seconds']} s")
    return venv


# --------------------------------------------------------------------------------------------
# emulator process
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ready(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/readyz", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


class Emulator:
    """A running (or stopped) bqemulator subprocess.

    ``restart()`` starts it again on the same port and data dir, so clients built from
    ``endpoint`` keep working; with the default ephemeral mode the restarted emulator is empty.
    """

    def __init__(self, venv: Path, port: int, project: str, *, data_dir: Path | None,
                 log_path: Path, run_dir: Path, owns_run_dir: bool, startup_timeout: float) -> None:
        self.venv = venv
        self.port = port
        self.project = project
        self.data_dir = data_dir
        self.log_path = log_path
        self.run_dir = run_dir
        self._owns_run_dir = owns_run_dir
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def persistent(self) -> bool:
        return self.data_dir is not None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        cmd = [str(self.venv / "bin" / "bqemulator"), "start",
               "--rest-host", "127.0.0.1", "--rest-port", str(self.port),
               "--grpc-host", "127.0.0.1", "--grpc-port", "0",
               "--project", self.project, "--log-format", "json", "--log-level", "info"]
        cmd += ["--data-dir", str(self.data_dir)] if self.data_dir else ["--ephemeral"]
        return cmd

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BQEMU_")}
        env.update(
            HOME=str(self.venv / DUCKDB_HOME),      # DuckDB finds the pre-installed spatial here
            BQEMU_ENABLE_FORMAT_EXTENSIONS="false",  # no `INSTALL avro` attempt (no network)
            BQEMU_TRACING_ENABLED="false",
            NO_COLOR="1",
            PYTHONUNBUFFERED="1",
        )
        return env

    def start(self) -> "Emulator":
        if self.running:
            return self
        if self.data_dir:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== start {time.strftime('%H:%M:%S')}: {' '.join(self.command())}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command(), cwd=self.run_dir, env=self.environment(), stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = began + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EmulatorError(f"bqemulator exited with {self.process.returncode} during startup; "
                                    f"log {self.log_path}:\n{self.log_tail()}")
            if _ready(self.endpoint):
                self.startup_seconds = round(time.monotonic() - began, 2)
                return self
            time.sleep(0.1)
        self.stop()
        raise EmulatorError(f"bqemulator not ready after {self.startup_timeout} s; log {self.log_path}:\n"
                            f"{self.log_tail()}")

    def stop(self, timeout: float = 15) -> None:
        """Graceful stop (SIGTERM, then SIGKILL after ``timeout``)."""
        if not self.running:
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """Hard crash (SIGKILL): what a dying sink looks like."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def restart(self) -> "Emulator":
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop and remove the temporary run dir (log included) if we created it."""
        self.stop()
        if self._owns_run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def __enter__(self) -> "Emulator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Emulator {self.endpoint} project={self.project} {state} data_dir={self.data_dir}>"


def start(port: int | None = None, project: str = DEFAULT_PROJECT, *, venv: str | os.PathLike[str] = DEFAULT_VENV,
          data_dir: str | os.PathLike[str] | None = None, log_path: str | os.PathLike[str] | None = None,
          startup_timeout: float = 90) -> Emulator:
    """Build the venv if needed and start an emulator; returns once ``/readyz`` answers 200.

    ``port=None`` picks a free 127.0.0.1 port (retrying on the rare clash). ``data_dir`` switches
    to persistent mode. The log goes to ``log_path`` (default: a temp run dir's ``bqemulator.log``).
    """
    venv_dir = ensure_venv(venv)
    run_dir = Path(tempfile.mkdtemp(prefix="dm-bqemu-"))
    log_file = Path(log_path) if log_path else run_dir / "bqemulator.log"
    attempts = 1 if port else 3
    last: Exception | None = None
    for _ in range(attempts):
        emulator = Emulator(venv_dir, port or free_port(), project,
                            data_dir=Path(data_dir).resolve() if data_dir else None, log_path=log_file,
                            run_dir=run_dir, owns_run_dir=log_path is None, startup_timeout=startup_timeout)
        try:
            emulator.start()
        except EmulatorError as exc:  # e.g. the port got taken between choosing and binding
            last = exc
            continue
        atexit.register(emulator.close)  # never leave an emulator (or its temp log) behind
        return emulator
    if log_path is None:
        shutil.rmtree(run_dir, ignore_errors=True)
    assert last is not None
    raise last


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--start", action="store_true", help="run the emulator until Ctrl-C")
    action.add_argument("--ensure", action="store_true", help="only build the venv")
    parser.add_argument("--venv", default=DEFAULT_VENV)
    parser.add_argument("--port", type=int, default=None, help="REST port (default: a free one)")
    parser.add_argument("--project", default=DEFAULT_PROJECT)
    parser.add_argument("--data-dir", default=None, help="persistent mode: keep data in DIR")
    parser.add_argument("--log", default=None, help="log file to keep (default: a temp file, removed at exit)")
    args = parser.parse_args(argv)

    began = time.monotonic()
    venv = ensure_venv(args.venv, quiet=False)
    print(f"venv {venv} ready in {time.monotonic() - began:.1f} s", flush=True)
    if args.ensure:
        return 0
    emulator = start(args.port, args.project, venv=venv, data_dir=args.data_dir, log_path=args.log)
    print(f"bqemulator ready in {emulator.startup_seconds} s\n"
          f"  endpoint  {emulator.endpoint}\n  project   {emulator.project}\n"
          f"  mode      {'persistent ' + str(emulator.data_dir) if emulator.persistent else 'ephemeral'}\n"
          f"  log       {emulator.log_path}\n  command   {' '.join(emulator.command())}\n"
          "client: bigquery.Client(project=..., credentials=AnonymousCredentials(), "
          "client_options={'api_endpoint': endpoint})\nCtrl-C to stop.", flush=True)
    stop = False

    def _handle(_sig: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, _handle)
    signal.signal(signal.SIGTERM, _handle)
    try:
        while not stop and emulator.running:
            time.sleep(0.5)
    finally:
        code = emulator.process.poll() if emulator.process else None
        emulator.stop()
    if code is not None:
        print(f"bqemulator exited with {code}; log {emulator.log_path}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
