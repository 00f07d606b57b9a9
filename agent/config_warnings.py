"""Settings that are valid but probably not what the user wants, one sentence each.

``config check`` prints them and ``license-agent run`` logs them at start. The destinations
a config enables come from the destination plugins themselves (``sla_destinations``), so a
third-party destination counts as much as a built-in one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent.config import AgentConfig
from agent.plugins import PluginHost, build_plugin_host
from agent.schedule import parse_frequency


@dataclass(frozen=True)
class DestinationSummary:
    """An enabled destination as ``config check`` shows it; no secrets in ``where``."""

    name: str
    where: str
    features: tuple[str, ...]


def enabled_destinations(
    config: AgentConfig, host: PluginHost | None = None
) -> list[DestinationSummary]:
    """The destinations the loaded plugins enable for ``config``, and which features' data
    each receives. They are built (nothing is connected or opened) and closed again."""
    host = host or build_plugin_host(config)
    found = []
    for destination in host.destinations(config):
        try:
            found.append(
                DestinationSummary(
                    destination.name,
                    destination.describe(),
                    tuple(sorted(destination.features)),
                )
            )
        finally:
            destination.close()
    return found


def _settings(config: AgentConfig, path: str) -> Any:
    try:
        return config.settings(path)
    except KeyError:
        return None  # its plugin is not loaded


def _needs_qrs(config: AgentConfig) -> bool:
    return config.license_monitor.enable or config.license_release.enable


def config_warnings(
    config: AgentConfig, destinations: Sequence[DestinationSummary] | None = None
) -> list[str]:
    """Settings that are valid but probably not what the user wants, one sentence each.

    ``destinations`` are those :func:`enabled_destinations` found (computed when not given).
    """
    warnings = list(config._load_warnings)
    base = "Butler.qlikSenseLicense"
    release = config.license_release
    influx = _settings(config, "influxDb")
    influx_on = bool(influx is not None and influx.enable)
    if release.enable:
        enabled = release.license_type.enabled()
        for name, license_type in enabled.items():
            days = license_type.release_threshold_days
            if days < 7:
                warnings.append(
                    f"{base}.licenseRelease.licenseType.{name}.releaseThresholdDays is {days}:"
                    " under 7 days QRS does not free a removed allocation but quarantines it"
                    " for 7 days after its last use (the user can get it back); use 7 or more"
                    " to free licenses at once"
                )
        if not enabled:
            known = ", ".join(
                info.alias or name for name, info in type(release.license_type).model_fields.items()
            )
            warnings.append(
                f"{base}.licenseRelease is enabled but no licenseType ({known or 'none loaded'})"
                " has enable: true, so nothing is released"
            )
        if not release.dry_run and release.max_releases_per_run is None:
            warnings.append(
                f"{base}.licenseRelease.maxReleasesPerRun is not set while dryRun is false: no"
                " limit on how many licenses one run may release (e.g. maxReleasesPerRun: 50,"
                " or '10%')"
            )
    for key, feature in (("licenseMonitor", config.license_monitor), ("licenseRelease", release)):
        if not feature.enable:
            continue
        note = parse_frequency(feature.frequency).note
        if note:
            warnings.append(f"{base}.{key}.frequency: {note}")
        to_influx = _settings(config, f"qlikSenseLicense.{key}.destination.influxDb")
        if to_influx is not None and to_influx.enable and not influx_on:
            warnings.append(
                f"{base}.{key}.destination.influxDb.enable is true but Butler.influxDb.enable is"
                " false, so nothing is written to InfluxDB"
            )
    if config.license_monitor.enable:
        if destinations is None:
            destinations = enabled_destinations(config)
        if not any("license_monitor" in d.features for d in destinations):
            warnings.append(
                f"{base}.licenseMonitor is enabled but no destination receives its data: enable"
                " licenseMonitor.destination.influxDb (with Butler.influxDb) or a destination"
                " under Butler.licenseAgent.destinations"
            )
    connections = (
        [
            (f"Butler.licenseAgent.sites[{i}]", s.config_qrs)
            for i, s in enumerate(config.agent.sites)
        ]
        if config.agent.sites
        else [("Butler", config.butler.config_qrs)]
    )
    for prefix, qrs in connections:
        if qrs is not None and _needs_qrs(config) and not qrs.use_ssl:
            warnings.append(
                f"{prefix}.configQRS.useSSL is false: requests, the X-Qlik-User header and the"
                " answers cross the network unencrypted, no certificate is used and nothing"
                " proves the server is QRS; QRS listens with TLS on port 4242: set useSSL: true"
            )
        elif qrs is not None and _needs_qrs(config) and not qrs.reject_unauthorized:
            warnings.append(
                f"{prefix}.configQRS.rejectUnauthorized is false: the Sense server's certificate"
                " is not verified, so anyone on the network path could pose as it; set it to"
                f" true ({prefix}.cert.clientCertCA, root.pem, is the CA that signed it)"
            )
    routed = [
        _settings(config, f"qlikSenseLicense.{key}.destination.influxDb")
        for key in ("licenseMonitor", "licenseRelease", "serverLicenseMonitor")
    ]
    if influx_on and not any(getattr(r, "enable", False) for r in routed):
        warnings.append(
            "Butler.influxDb.enable is true but no feature's destination.influxDb.enable is"
            " true, so nothing is written to InfluxDB"
        )
    if influx_on and influx.use_https and not influx.verify_tls:
        warnings.append(
            "Butler.influxDb.verifyTls is false: the InfluxDB server's certificate is not"
            " verified; set caCert to the CA file that signed it instead"
        )
    return warnings
