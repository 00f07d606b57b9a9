"""Lifecycle hooks: sla_configure, sla_startup and sla_shutdown."""

from __future__ import annotations

import pytest

from agent.config import ConfigError
from agent.hookspecs import hookimpl
from agent.plugins import PluginHost, build_plugin_host, parse_config


class Recorder:
    def __init__(self, fail_in: str = "") -> None:
        self.calls: list[str] = []
        self.fail_in = fail_in

    def _record(self, name: str) -> None:
        self.calls.append(name)
        if name == self.fail_in:
            raise RuntimeError(f"{name} failed")

    @hookimpl
    def sla_startup(self, config):
        self._record("sla_startup")

    @hookimpl
    def sla_shutdown(self, config):
        self._record("sla_shutdown")


def _config(tmp_path, settings=None):
    data = {"Butler": {"licenseAgent": {"plugins": {"settings": settings or {}}}}}
    return parse_config(data, source=tmp_path / "config.yaml")


def test_startup_and_shutdown_reach_every_plugin_even_when_one_fails(tmp_path):
    host = PluginHost()
    broken, healthy = Recorder(fail_in="sla_startup"), Recorder()
    host._register(broken, "broken", "embedded")
    host._register(healthy, "healthy", "embedded")
    config = _config(tmp_path)
    host.startup(config)
    host.shutdown(config)
    assert healthy.calls == ["sla_startup", "sla_shutdown"]
    assert broken.calls == ["sla_startup", "sla_shutdown"]


class NeedsSetting:
    seen: dict | None = None

    @hookimpl
    def sla_configure(self, config):
        settings = config.plugin_settings("needs_setting")
        if "url" not in settings:
            raise ConfigError(["Butler.licenseAgent.plugins.settings.needs_setting.url is missing"])
        NeedsSetting.seen = dict(settings)


def test_configure_passes_plugin_settings(tmp_path):
    config = _config(tmp_path, {"needs_setting": {"url": "https://hooks.example.com"}})
    build_plugin_host(config, extra=[("needs_setting", NeedsSetting())])
    assert NeedsSetting.seen == {"url": "https://hooks.example.com"}


def test_configure_error_from_a_plugin_reaches_the_user(tmp_path):
    with pytest.raises(ConfigError, match="needs_setting.url is missing"):
        build_plugin_host(_config(tmp_path), extra=[("needs_setting", NeedsSetting())])
