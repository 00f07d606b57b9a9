"""``license-agent config check [FILE]`` and ``license-agent config schema``.

``check`` validates a config file and prints what the agent would do with it: the jobs and
their next three run times (UTC), the release settings, the plugins, the destinations, then
warnings and problems with the files the config names. Exit code 0 when the config is valid,
2 when it is not. Missing certificate files are reported but, unless ``--strict``, do not fail
the check: a config is often written on a workstation before the QMC export is copied next to
it, and ``license-agent run`` refuses to start while they are missing anyway.
Nothing secret is printed: tokens and passwords only appear as "set".
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path

from agent.certificates import check_files, connection_security
from agent.cli.common import config_path, load_config_for, print_error
from agent.config import AgentConfig
from agent.config_warnings import DestinationSummary, config_warnings, enabled_destinations
from agent.jobs import jobs_from_config
from agent.logging import setup_logging
from agent.plugins import (
    PluginHost,
    PluginInfo,
    PluginLoadError,
    build_plugin_host,
    json_schema,
    load_config,
)
from agent.schedule import Frequency

LABEL_WIDTH = 13


def register(subparsers: argparse._SubParsersAction) -> None:
    from agent.cli import add_common_options

    parser = subparsers.add_parser(
        "config", help="check a config file, or print the config's JSON Schema"
    )
    actions = parser.add_subparsers(dest="config_action", metavar="ACTION")
    check = actions.add_parser(
        "check", help="validate a config file and show what would run (exit 2 if invalid)"
    )
    add_common_options(check)
    check.add_argument(
        "file",
        nargs="?",
        metavar="FILE",
        help="config file (default: --config, then $LICENSE_AGENT_CONFIG, then ./config.yaml)",
    )
    check.add_argument(
        "--strict",
        action="store_true",
        help="also exit 2 when a certificate file the config names is missing or unusable",
    )
    check.set_defaults(handler=run_check)
    schema = actions.add_parser("schema", help="print the JSON Schema of the config file")
    add_common_options(schema)
    schema.add_argument("-o", "--output", metavar="FILE", help="write it to FILE instead")
    schema.set_defaults(handler=run_schema)

    def show_help(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(handler=show_help)


def run_check(args: argparse.Namespace) -> int:
    path = Path(args.file) if args.file else config_path(args)
    config = load_config(path)  # a ConfigError ends in exit code 2 (agent.cli.main)
    setup_logging(config, level=args.log_level, console_only=True)
    try:
        host = build_plugin_host(config)
    except PluginLoadError as exc:  # strict plugin loading is part of the config
        print_error(exc)
        return 2
    file_problems = check_files(config)
    now = datetime.now(timezone.utc)
    destinations = enabled_destinations(config, host)
    for line in summary_lines(config, host, now, destinations):
        print(line)
    warnings = config_warnings(config, destinations)
    if warnings:
        print()
        print("Warnings")
        for warning in warnings:
            print(f"  - {warning}")
    if file_problems:
        print()
        print("Files")
        for problem in file_problems:
            print(f"  - {problem}")
        print()
        noun = "file is" if len(file_problems) == 1 else "files are"
        if args.strict:
            print(f"The config is invalid: {len(file_problems)} {noun} missing or unusable.")
            return 2
        print(
            f"The config is valid, but {len(file_problems)} {noun} missing or unusable:"
            " `license-agent run` will not start until they are fixed (--strict makes this"
            " an error)."
        )
        return 0
    print()
    print("The config is valid.")
    return 0


def run_schema(args: argparse.Namespace) -> int:
    # With a config, the schema covers the plugins it loads (third-party ones too).
    config = load_config_for(args, required=False)
    text = json.dumps(json_schema(config), indent=2, ensure_ascii=False) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        print(text, end="")
    return 0


# --------------------------------------------------------------------------- the summary


def summary_lines(
    config: AgentConfig,
    host: PluginHost,
    now: datetime,
    destinations: Sequence[DestinationSummary] | None = None,
) -> list[str]:
    """The human summary of a valid config, as lines (``now`` given; no I/O but the
    plugins' hooks, which build their rules and destinations without connecting)."""
    lines = [f"Config {config.source or '(not from a file)'}", ""]
    qrs = config.butler.config_qrs
    if config.agent.sites:
        sites = []
        for site in config.sites():
            sites.append(
                f"{site.name}: {site.qrs.base_url} as {site.qrs.qlik_user}"
                f" ({connection_security(site.qrs)}); tags"
                f" {', '.join(f'{k}={v}' for k, v in site.influx_tags)}"
            )
        lines += _row("Sites", sites)
    elif qrs is not None:
        lines += _row("QRS", [f"{qrs.base_url} as {qrs.qlik_user} ({connection_security(qrs)})"])
    lines += _jobs(config, now)
    lines += _release(config, host)
    lines += _plugins(config, host.infos.values())
    if destinations is None:
        destinations = enabled_destinations(config, host)
    shown = [
        f"{d.name}: {d.where}; receives {', '.join(d.features) or 'nothing (no feature routed here)'}"
        for d in destinations
    ]
    lines += _row("Destinations", shown or ["none enabled"])
    return lines


def _row(label: str, values: Sequence[str]) -> list[str]:
    pad = " " * LABEL_WIDTH
    return [(label.ljust(LABEL_WIDTH) if i == 0 else pad) + value for i, value in enumerate(values)]


def _jobs(config: AgentConfig, now: datetime) -> list[str]:
    jobs = jobs_from_config(config)
    if not jobs:
        return _row(
            "Jobs",
            [
                "none enabled: set Butler.qlikSenseLicense.licenseMonitor.enable or"
                " licenseRelease.enable to true"
            ],
        )
    at_start = "yes" if config.agent.run_at_start else "no"
    values = [f"(times in UTC; each job also runs once at start: {at_start})"]
    for name, frequency in jobs:
        extra = ""
        if name == "release":
            extra = ", DRY RUN" if config.license_release.dry_run else ", LIVE: releases licenses"
        values.append(f"{name:<9}{frequency.text!r}: {frequency.describe()}{extra}")
        values.append(" " * 9 + "next: " + ", ".join(_times(frequency, now)))
    return _row("Jobs", values)


def _times(frequency: Frequency, now: datetime) -> list[str]:
    fmt = "%Y-%m-%d %H:%M:%S" if frequency.seconds != (0,) else "%Y-%m-%d %H:%M"
    return [moment.strftime(fmt) for moment in frequency.next_runs(now, 3)]


def _release(config: AgentConfig, host: PluginHost) -> list[str]:
    release = config.license_release
    if not release.enable:
        return []
    types = release.license_type.enabled()
    thresholds = ", ".join(
        f"{name} unused for {lt.release_threshold_days} days" for name, lt in types.items()
    )
    mode = "dry run (nothing is released)" if release.dry_run else "LIVE"
    limit = release.max_releases_per_run
    if limit is None or (limit.count is None and limit.percent is None):
        safety = "no safety limit"
    else:
        parts = []
        if limit.count is not None:
            parts.append(f"{limit.count}")
        if limit.percent is not None:
            parts.append(f"{limit.percent:g}% of the type's allocations")
        safety = "safety limit: at most " + " and ".join(parts) + " per type and run"
    # The rules as their plugins describe them, for each site (sites may override them).
    protected: list[str] = []
    for site in config.sites():
        rules, errors = host.release_rules(config, site)
        described = [
            (rule.description or rule.name).removeprefix("never release ") for rule in rules
        ]
        described += [f"plugin {name} FAILED: {why}" for name, why in sorted(errors.items())]
        text = "; ".join(described) or "no rule"
        if len(config.sites()) > 1:
            text = f"{site.name}: {text}"
        if text not in protected:
            protected.append(text)
    return _row(
        "Release",
        [
            f"{mode}; {thresholds or 'no license type enabled'}",
            safety + f"; {release.delete_concurrency} deletes in parallel",
            *("never release: " + text for text in protected),
        ],
    )


def _plugins(config: AgentConfig, plugins: Iterable[PluginInfo]) -> list[str]:
    infos = sorted(plugins, key=lambda i: (i.source != "built-in", i.name))
    loaded = [
        i.name if i.source == "built-in" else f"{i.name} ({i.source})" for i in infos if i.enabled
    ]
    disabled = [i.name for i in infos if not i.enabled and not i.error]
    failed = [f"{i.name} ({i.error})" for i in infos if i.error]
    values = [f"{len(loaded)} loaded: {', '.join(loaded) or '-'}"]
    if disabled:
        values.append(f"disabled: {', '.join(disabled)}")
    if failed:
        values.append(f"failed to load: {'; '.join(failed)}")
    # What each plugin was given: its keys and a short, secret-free account of their values.
    given: dict[str, list[tuple[str, str]]] = {}
    for owned in config.plugin_sections:
        if owned.loaded:
            keys = given.setdefault(owned.plugin, [])
            value = config.settings(owned.path)
            if value is not None:
                keys.append((owned.path, _given(value)))
    values += [_reads(plugin, keys) for plugin, keys in given.items() if keys]
    unset = [plugin for plugin, keys in given.items() if not keys]
    if unset:
        values.append(f"no key set for: {', '.join(unset)}")
    return _row("Plugins", values)


def _reads(plugin: str, keys: Sequence[tuple[str, str]]) -> str:
    """``flags reads qlikSenseLicense.licenseRelease.neverRelease: inactive = ignore, ...``."""
    parts = [path.split(".") for path, _ in keys]
    common = 0
    while len(keys) > 1 and all(len(p) > common + 1 for p in parts):
        if len({tuple(p[: common + 1]) for p in parts}) > 1:
            break
        common += 1
    if common == 0:
        return f"{plugin} reads " + ", ".join(f"{path} = {value}" for path, value in keys)
    shown = ", ".join(
        f"{'.'.join(p[common:])} = {value}" for p, (_, value) in zip(parts, keys, strict=True)
    )
    return f"{plugin} reads {'.'.join(parts[0][:common])}: {shown}"


def _given(value: object) -> str:
    """A value for the summary: never its text (it may be a secret), only its shape."""
    if value is None:
        return "not set"
    if isinstance(value, list | tuple):
        return _count(len(value), "item", "items")
    if isinstance(value, str):
        return value if value in ("yes", "no", "ignore") else "set"
    if isinstance(value, bool | int | float):
        return str(value).lower()
    enable = getattr(value, "enable", None)
    if isinstance(enable, bool):
        return "enabled" if enable else "off"
    return "set"


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"
