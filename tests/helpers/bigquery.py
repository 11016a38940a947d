"""A local BigQuery emulator for tests that drive the official ``google-cloud-bigquery`` client.

Built on ``scripts/bq_emulator.py`` (bqemulator 1.4.0 in its own venv, ``.venv-bqemu/``, built on
first use: ~2 s with a warm uv cache, ~6 s cold with uv, ~40 s with the pip fallback).

Fixtures (import them into the test module that uses them)::

    from .helpers.bigquery import bq_client, bq_dataset, bq_emulator, bq_emulator_factory  # noqa: F401

* ``bq_emulator`` (session): one ephemeral emulator for the whole session (an
  ``scripts/bq_emulator.py`` ``Emulator``: ``.endpoint``, ``.project``, ``.process``, ``.stop()``).
  Skipped only when ``CI`` is unset and the venv cannot be built; with ``CI`` set that is a failure.
  An emulator that does not come up is always an error.
* ``bq_client``: a ``bigquery.Client`` on the session emulator (anonymous credentials).
* ``bq_dataset``: a fresh dataset id (``"<project>.<dataset>"``) per test, dropped afterwards.
  The session emulator is shared, so tests should write into their own dataset.
* ``bq_emulator_factory``: private emulators for "sink down" tests. ``factory.start(persistent=...)``
  returns an emulator with ``.stop()`` (SIGTERM), ``.kill()`` (SIGKILL), ``.start()`` and
  ``.restart()``; the restart reuses the port, so a client made before keeps working.
  Everything is stopped at teardown.

Data across a stop/start: **ephemeral** (default, DuckDB ``:memory:``) comes back **empty**
(no datasets, no tables); **persistent** (``persistent=True`` -> ``--data-dir``) keeps datasets,
tables (with their partitioning/clustering) and rows, after a graceful stop and after SIGKILL.

Retries: the client's ``DEFAULT_RETRY`` retries connection errors and HTTP 5xx for up to 600 s.
An emulator that is down (connection refused), or one that answers 500 (it does for some
unsupported SQL and for invalid insertAll values), therefore makes a default call hang for ten
minutes. Pass ``retry=fast_retry()`` (and ``job_retry=None`` to ``query``) wherever a failure is
expected or possible; ``retry=None`` fails at once.

``count_http_requests(client)`` counts the HTTP requests the client sends (retries included).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from google.cloud import bigquery

REPO_ROOT = Path(__file__).resolve().parents[2]
_MODULE_NAME = "dm_bq_emulator"


def load_emulator_module():
    """``scripts/bq_emulator.py`` as a module (``scripts/`` is not a package)."""
    if _MODULE_NAME in sys.modules:
        return sys.modules[_MODULE_NAME]
    spec = importlib.util.spec_from_file_location(_MODULE_NAME, REPO_ROOT / "scripts" / "bq_emulator.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE_NAME] = module
    spec.loader.exec_module(module)
    return module


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _venv_or_skip() -> Path:
    emu = load_emulator_module()
    try:
        return emu.ensure_venv()
    except Exception as exc:  # noqa: BLE001 - any build failure (no network, no python3.11, ...)
        message = f"BigQuery emulator venv could not be built: {exc}"
        if in_ci():
            pytest.fail(f"{message} (CI is set, so this is an error, not a skip)", pytrace=False)
        pytest.skip(message)


def make_client(emulator: Any, project: str | None = None) -> "bigquery.Client":
    """A client on an emulator (anything with ``.endpoint`` and ``.project``)."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    return bigquery.Client(
        project=project or emulator.project,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": emulator.endpoint},
    )


def fast_retry(deadline: float = 5.0):
    """The client's default retry predicate with a short deadline instead of 600 s."""
    from google.cloud import bigquery

    return bigquery.DEFAULT_RETRY.with_deadline(deadline)


# ------------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def bq_emulator() -> Iterator[Any]:
    venv = _venv_or_skip()
    emulator = load_emulator_module().start(venv=venv)
    try:
        yield emulator
    finally:
        emulator.close()


@pytest.fixture
def bq_client(bq_emulator: Any) -> Iterator["bigquery.Client"]:
    client = make_client(bq_emulator)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def bq_dataset(bq_client: "bigquery.Client") -> Iterator[str]:
    """A new dataset ``"<project>.<dataset>"`` for this test only."""
    dataset_id = f"{bq_client.project}.t_{uuid.uuid4().hex[:12]}"
    bq_client.create_dataset(dataset_id)
    try:
        yield dataset_id
    finally:
        with contextlib.suppress(Exception):
            bq_client.delete_dataset(dataset_id, delete_contents=True, not_found_ok=True, retry=fast_retry())


@dataclass
class EmulatorFactory:
    """Starts private emulators for one test and stops them all at teardown."""

    venv: Path
    emulators: list[Any] = field(default_factory=list)
    _tmp: list[tempfile.TemporaryDirectory] = field(default_factory=list)

    def start(self, *, persistent: bool = False, project: str = "dm-test", port: int | None = None,
              data_dir: str | os.PathLike[str] | None = None) -> Any:
        """An emulator; ``persistent=True`` keeps its data in a temp dir across stop/start/kill."""
        if persistent and data_dir is None:
            tmp = tempfile.TemporaryDirectory(prefix="dm-bqemu-data-")
            self._tmp.append(tmp)
            data_dir = tmp.name
        emulator = load_emulator_module().start(port, project, venv=self.venv, data_dir=data_dir)
        self.emulators.append(emulator)
        return emulator

    def client(self, emulator: Any) -> "bigquery.Client":
        return make_client(emulator)

    def close(self) -> None:
        for emulator in self.emulators:
            with contextlib.suppress(Exception):
                emulator.close()
        for tmp in self._tmp:
            tmp.cleanup()


@pytest.fixture
def bq_emulator_factory() -> Iterator[EmulatorFactory]:
    factory = EmulatorFactory(_venv_or_skip())
    try:
        yield factory
    finally:
        factory.close()


# ------------------------------------------------------------------------------------------------
# request counting
# ------------------------------------------------------------------------------------------------


@dataclass
class RequestLog:
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path without query)

    @property
    def count(self) -> int:
        return len(self.requests)

    def by_path_suffix(self, suffix: str) -> int:
        return sum(1 for _, path in self.requests if path.endswith(suffix))


@contextlib.contextmanager
def count_http_requests(client: "bigquery.Client") -> Iterator[RequestLog]:
    """Count every HTTP request ``client`` sends inside the block (each retry is one more)."""
    from urllib.parse import urlsplit

    from requests.adapters import HTTPAdapter

    log = RequestLog()

    class CountingAdapter(HTTPAdapter):
        def send(self, request, *args, **kwargs):  # type: ignore[override]
            log.requests.append((request.method, urlsplit(request.url).path))
            return super().send(request, *args, **kwargs)

    session = client._http  # a requests.Session (google.auth AuthorizedSession)
    saved = dict(session.adapters)
    adapter = CountingAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    try:
        yield log
    finally:
        session.adapters.clear()
        session.adapters.update(saved)
        adapter.close()
