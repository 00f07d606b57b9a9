"""The ``influxdb`` destination: InfluxDB 1.x, 2.x (and Cloud) and 3.x.

Enabled by ``Butler.influxDb.enable`` together with each feature's
``destination.influxDb.enable``: ``licenseMonitor`` for the license points, ``licenseRelease`` for
release events (the existing tool ignores that switch; the agent honours it) and
``serverLicenseMonitor`` for the site license. ``Butler.influxDb.version`` picks the protocol:

* **1**: HTTP ``POST /write`` with line protocol, optional user name and password (basic
  auth, never in the URL). Before the first write, the database and the retention policy are
  created when missing (``CREATE RETENTION POLICY ... DEFAULT``, as the existing tool does).
* **2**: the influxdb-client write API with ``org``, ``bucket`` and ``token`` (InfluxDB 2.x,
  Cloud, the v2-compatible endpoint of 1.8+, VictoriaMetrics).
* **3**: the same v2-compatible write endpoint of InfluxDB 3, with ``database`` as the bucket.

Lines are built with influxdb-client's ``Point`` and carry explicit nanosecond timestamps, so
a re-sent point overwrites itself. ``useHttps``, ``caCert`` and ``verifyTls`` apply to every
version. A failure raises :class:`DestinationError` naming ``host:port`` and the HTTP status
with a short body; tokens and passwords never appear in it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any, Literal

import requests
import urllib3
from influxdb_client import Point as InfluxPoint
from influxdb_client import WritePrecision
from loguru import logger
from pydantic import Field

from agent.config import ButlerSection, OptionalPath, SettingsModel, TagBlock
from agent.hookspecs import Settings, hookimpl
from agent.logging import mask_secrets, register_secret
from agent.models import (
    FEATURE_LICENSE_MONITOR,
    FEATURE_LICENSE_RELEASE,
    FEATURE_SERVER_LICENSE,
    Destination,
    DestinationError,
    Point,
    SettingsSection,
)
from agent.outbox import time_to_ns

NAME = "influxdb"
#: Lines per HTTP request; a 413 (body too large) halves it for that write.
BATCH_LINES = 5000


def line_protocol(point: Point) -> str:
    """One point as a line of InfluxDB line protocol with a nanosecond timestamp.

    Integers become floats (the users' series hold floats; InfluxDB rejects a type change);
    booleans and strings are kept. Returns ``""`` for a point with no writable field.
    """
    line = InfluxPoint(point.measurement)
    for key, value in sorted(point.tags.items()):
        line.tag(key, value)
    writable = 0
    for key, value in point.fields.items():
        if isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            continue  # line protocol has no null, NaN or infinity
        line.field(key, value)
        writable += 1
    if not writable:
        return ""
    line.time(time_to_ns(point.time), WritePrecision.NS)
    return line.to_line_protocol()


def _short(text: str, limit: int = 200) -> str:
    # Masked before it is cut: a server may echo the token or password it was sent.
    text = mask_secrets(" ".join((text or "").split()))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --------------------------------------------------------------------------- settings


class InfluxAuth(ButlerSection):
    enable: bool = False
    username: str = ""
    password: str = ""


class RetentionPolicy(ButlerSection):
    name: str = "autogen"
    duration: str = "0s"


class InfluxDb(ButlerSection):
    """``Butler.influxDb``: the InfluxDB server Butler writes to."""

    enable: bool = Field(default=False, description="Write to InfluxDB")
    version: Literal[1, 2, 3] = Field(
        default=1,
        description="InfluxDB major version: 1 uses dbName (and auth), 2 uses org, bucket and"
        " token, 3 uses database and token",
    )
    host_ip: str = Field(
        default="127.0.0.1", alias="hostIP", min_length=1, description="InfluxDB host"
    )
    host_port: int = Field(
        default=8086, alias="hostPort", ge=1, le=65535, description="InfluxDB port (8086)"
    )
    #: Agent additions: HTTPS and a custom CA file for the InfluxDB server.
    use_https: bool = Field(default=False, alias="useHttps")
    ca_cert: OptionalPath = Field(default=None, alias="caCert")
    verify_tls: bool = Field(default=True, alias="verifyTls")
    timeout: float = Field(default=10.0, gt=0, le=600)
    auth: InfluxAuth = InfluxAuth()
    db_name: str = Field(
        default="senseops", alias="dbName", description="Database (version 1), created if missing"
    )
    retention_policy: RetentionPolicy = Field(default=RetentionPolicy(), alias="retentionPolicy")
    tag: TagBlock = TagBlock()
    org: str = Field(default="", description="Organization (version 2)")
    bucket: str = Field(default="", description="Bucket (version 2)")
    token: str = Field(
        default="",
        description="API token with write access (versions 2 and 3); prefer ${env:INFLUX_TOKEN}",
    )
    database: str = Field(default="", description="Database (version 3)")

    @property
    def url(self) -> str:
        scheme = "https" if self.use_https else "http"
        return f"{scheme}://{self.host_ip}:{self.host_port}"


class FeatureInfluxDb(SettingsModel):
    """A feature's ``destination.influxDb``: whether its points go to Butler.influxDb."""

    enable: bool = Field(
        default=False,
        description="Write this feature's data to the InfluxDB of Butler.influxDb"
        " (which must be enabled too)",
    )
    tag: TagBlock = TagBlock()


SERVER = "influxDb"
#: Each feature's switch, as Butler spells it.
FEATURE_PATHS = {
    FEATURE_LICENSE_MONITOR: "qlikSenseLicense.licenseMonitor.destination.influxDb",
    FEATURE_LICENSE_RELEASE: "qlikSenseLicense.licenseRelease.destination.influxDb",
    FEATURE_SERVER_LICENSE: "qlikSenseLicense.serverLicenseMonitor.destination.influxDb",
}


@hookimpl
def sla_settings() -> list[SettingsSection]:
    # The server is shared by every site; a site may change a feature's tags.
    # Butler's own influxDb section: a shared Butler file keeps it when this plugin is disabled.
    return [SettingsSection(SERVER, InfluxDb, per_site=False, shared_with_butler=True)] + [
        SettingsSection(path, FeatureInfluxDb) for path in FEATURE_PATHS.values()
    ]


def _features(settings: Settings) -> frozenset[str]:
    server = settings[SERVER]
    if server is None or not server.enable:
        return frozenset()
    return frozenset(
        feature
        for feature, path in FEATURE_PATHS.items()
        if getattr(settings.get(path), "enable", False)
    )


class _NotAllowed(DestinationError):
    """403 on a /query statement: the user lacks the privilege (not a connection problem)."""


class _InfluxBase:
    name = NAME

    def __init__(self, settings: InfluxDb, features: frozenset[str]) -> None:
        self.settings = settings
        self.features = features
        self.where = f"{settings.host_ip}:{settings.host_port}"
        register_secret(settings.token)
        register_secret(settings.auth.password)
        if settings.use_https and not settings.verify_tls:
            # The config check warns at start, in words; urllib3 would repeat it per request.
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    def _verify(self) -> bool | str:
        if not self.settings.verify_tls:
            return False
        return str(self.settings.ca_cert) if self.settings.ca_cert else True

    def write(self, points: Sequence[Point]) -> None:
        pairs = [(p, line_protocol(p)) for p in points]
        pairs = [(p, line) for p, line in pairs if line]
        rejected: list[Point] = []
        reasons: list[str] = []
        for start in range(0, len(pairs), BATCH_LINES):
            try:
                self._write_split(pairs[start : start + BATCH_LINES], rejected, reasons)
            except DestinationError as exc:
                # Earlier batches are written; this one and the rest are not.
                failed = [p for p, _ in pairs[start:]]
                raise DestinationError(str(exc), failed=failed, rejected=rejected) from None
        if rejected:
            raise DestinationError(
                f"{len(rejected)} points rejected for good: {reasons[0]}", rejected=rejected
            )

    def _write_split(
        self, batch: list[tuple[Point, str]], rejected: list[Point], reasons: list[str]
    ) -> None:
        status, body = self._post([line for _, line in batch])
        if status == 413 and len(batch) > 1:
            half = len(batch) // 2
            self._write_split(batch[:half], rejected, reasons)
            self._write_split(batch[half:], rejected, reasons)
            return
        if _permanent(status, body):
            rejected.extend(p for p, _ in batch)
            reasons.append(self._http_error(status, body))
            return
        if status >= 300:
            raise DestinationError(self._http_error(status, body))

    def _http_error(self, status: int, body: str) -> str:
        hint = {
            401: " (check the token / Butler.influxDb.auth)",
            403: " (the token or user may not write here)",
            404: " (check the database / bucket / org)",
            413: " (request too large)",
        }.get(status, "")
        return f"InfluxDB at {self.where} answered HTTP {status}{hint}: {_short(body)}"

    def _post(self, lines: list[str]) -> tuple[int, str]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class InfluxV1(_InfluxBase):
    """InfluxDB 1.x over its HTTP API (``/query``, ``/write``)."""

    def __init__(self, settings: InfluxDb, features: frozenset[str]) -> None:
        super().__init__(settings, features)
        self.session = requests.Session()
        if settings.auth.enable:
            self.session.auth = (settings.auth.username, settings.auth.password)
        self._database_ready = False

    def describe(self) -> str:
        rp = self.settings.retention_policy.name
        return f"InfluxDB 1.x {self.settings.url} database {self.settings.db_name} (retention policy {rp})"

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = f"{self.settings.url}{path}"
        try:
            # verify per request: a session-level value loses to REQUESTS_CA_BUNDLE.
            return self.session.request(
                method, url, timeout=self.settings.timeout, verify=self._verify(), **kwargs
            )
        except requests.exceptions.SSLError:
            raise DestinationError(
                f"TLS error talking to InfluxDB at {self.where}"
                " (check Butler.influxDb.caCert / verifyTls / useHttps)"
            ) from None
        except requests.exceptions.Timeout:
            raise DestinationError(
                f"InfluxDB at {self.where} did not answer within {self.settings.timeout:g} s"
            ) from None
        except requests.exceptions.RequestException as exc:
            reason = "connection refused" if "refused" in str(exc).lower() else type(exc).__name__
            raise DestinationError(
                f"cannot connect to InfluxDB at {self.where}: {reason}"
            ) from None

    def _query(self, q: str, method: str = "GET") -> dict[str, Any]:
        if method == "GET":
            response = self._request("GET", "/query", params={"q": q})
        else:
            response = self._request("POST", "/query", data={"q": q})
        if response.status_code == 403:
            raise _NotAllowed(self._http_error(response.status_code, response.text))
        if response.status_code >= 300:
            raise DestinationError(self._http_error(response.status_code, response.text))
        try:
            data = response.json()
            result = data["results"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            raise DestinationError(
                f"InfluxDB at {self.where} answered {q.split(' ')[0]} with unexpected data"
            ) from None
        if "error" in result:
            raise DestinationError(f"InfluxDB at {self.where}: {_short(str(result['error']))}")
        return result

    @staticmethod
    def _names(result: dict[str, Any]) -> set[str]:
        return {row[0] for series in result.get("series", []) for row in series.get("values", [])}

    def ensure_database(self) -> None:
        """Create the database and the retention policy when missing (once per process)."""
        if self._database_ready:
            return
        db = self.settings.db_name
        rp = self.settings.retention_policy
        try:
            if db not in self._names(self._query("SHOW DATABASES")):
                self._query(f"CREATE DATABASE {_quote_ident(db)}", "POST")
            if rp.name not in self._names(
                self._query(f"SHOW RETENTION POLICIES ON {_quote_ident(db)}")
            ):
                self._query(
                    f"CREATE RETENTION POLICY {_quote_ident(rp.name)} ON {_quote_ident(db)}"
                    f" DURATION {rp.duration} REPLICATION 1 DEFAULT",
                    "POST",
                )
        except _NotAllowed as exc:
            # A write-only user may not inspect or create: write anyway, as the database
            # usually exists; if it does not, the write says so.
            logger.warning(
                "InfluxDB user may not check or create database {}; writing anyway ({})",
                db,
                exc,
            )
        self._database_ready = True

    def write(self, points: Sequence[Point]) -> None:
        try:
            self.ensure_database()
        except DestinationError as exc:
            raise DestinationError(str(exc), failed=points) from None
        super().write(points)

    def _post(self, lines: list[str]) -> tuple[int, str]:
        # No `rp` parameter: points go to the database's default policy, as the existing
        # tool's do (ensure_database made the configured policy the default when it created it).
        response = self._request(
            "POST",
            "/write",
            params={"db": self.settings.db_name, "precision": "ns"},
            data="\n".join(lines).encode("utf-8"),
        )
        if response.status_code == 404 and "database not found" in response.text:
            self._database_ready = False  # dropped behind our back: create it on the next try
        return response.status_code, response.text

    def close(self) -> None:
        self.session.close()


class InfluxV2(_InfluxBase):
    """InfluxDB 2.x / Cloud / 3.x through influxdb-client's synchronous write API."""

    def __init__(self, settings: InfluxDb, features: frozenset[str]) -> None:
        super().__init__(settings, features)
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        v3 = settings.version == 3
        self.bucket = settings.database if v3 else settings.bucket
        # InfluxDB 3 ignores org; influxdb-client still wants one for the query string.
        self.org = settings.org or ("-" if v3 else "")
        verify = self._verify()
        self.client = InfluxDBClient(
            url=settings.url,
            token=settings.token or None,
            org=self.org,
            timeout=int(settings.timeout * 1000),
            verify_ssl=verify is not False,
            ssl_ca_cert=verify if isinstance(verify, str) else None,
        )
        self.write_api = self.client.write_api(write_options=SYNCHRONOUS)

    def describe(self) -> str:
        if self.settings.version == 3:
            return f"InfluxDB 3 {self.settings.url} database {self.bucket}"
        return f"InfluxDB 2 API {self.settings.url} org {self.org or '-'} bucket {self.bucket}"

    def _post(self, lines: list[str]) -> tuple[int, str]:
        from influxdb_client.rest import ApiException
        from urllib3.exceptions import HTTPError, NewConnectionError, SSLError, TimeoutError

        try:
            self.write_api.write(
                bucket=self.bucket, org=self.org, record=lines, write_precision=WritePrecision.NS
            )
        except ApiException as exc:
            if not exc.status:  # influxdb-client's way of reporting a TLS failure: no answer
                raise DestinationError(
                    f"TLS error talking to InfluxDB at {self.where}"
                    " (check Butler.influxDb.caCert / verifyTls / useHttps)"
                    if "ssl" in str(exc.reason).lower()
                    else f"no answer from InfluxDB at {self.where}"
                ) from None
            body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else exc.body
            return int(exc.status), _message(body or exc.reason or "")
        except SSLError:
            raise DestinationError(
                f"TLS error talking to InfluxDB at {self.where}"
                " (check Butler.influxDb.caCert / verifyTls / useHttps)"
            ) from None
        except NewConnectionError as exc:  # before TimeoutError: urllib3 derives it from that
            reason = "connection refused" if "refused" in str(exc).lower() else "no connection"
            raise DestinationError(
                f"cannot connect to InfluxDB at {self.where}: {reason}"
            ) from None
        except TimeoutError:
            raise DestinationError(
                f"InfluxDB at {self.where} did not answer within {self.settings.timeout:g} s"
            ) from None
        except (HTTPError, OSError) as exc:
            reason = "connection refused" if "refused" in str(exc).lower() else type(exc).__name__
            raise DestinationError(
                f"cannot connect to InfluxDB at {self.where}: {reason}"
            ) from None
        return 204, ""

    def close(self) -> None:
        self.client.close()


_DATA_PROBLEM = re.compile(r"partial write|parse|conflict|retention|invalid field|schema", re.I)


def _permanent(status: int, body: str) -> bool:
    """Whether the server refused the points themselves, so that re-sending cannot help.

    413 (a single point too large), 422 (InfluxDB 2: beyond retention) and a 400 whose body
    names a data problem (unparsable line, field type conflict, partial write). Any other 400
    is taken as a setting to fix (org, bucket) and the points are kept for a later retry.
    """
    if status in (413, 422):
        return True
    return status == 400 and bool(_DATA_PROBLEM.search(body or ""))


def _message(body: str) -> str:
    """The ``message`` of an InfluxDB JSON error body, else the body itself."""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return data["message"]
    return body


def make_destination(settings: InfluxDb, features: frozenset[str]) -> Destination:
    if settings.version == 1:
        return InfluxV1(settings, features)
    return InfluxV2(settings, features)


@hookimpl
def sla_destinations(settings: Settings) -> list[Destination] | None:
    features = _features(settings)
    if not features:
        return None
    return [make_destination(settings[SERVER], features)]
