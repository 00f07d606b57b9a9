"""The plugin settings contract: a plugin declares the keys it owns with ``sla_settings``, the
config is validated against them, and its hooks receive the validated values."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from agent.config import ConfigError, LicenseTypeRelease
from agent.hookspecs import hookimpl
from agent.models import ReleaseRule, SettingsSection
from agent.plugins import build_plugin_host, json_schema, parse_config

VIP = "qlikSenseLicense.licenseRelease.neverRelease.vipPattern"


class VipPattern(BaseModel):
    """Protect users whose name matches one of these patterns."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    patterns: list[str] = []


class VipPlugin:
    seen: list[object] = []

    @hookimpl
    def sla_settings(self):
        return [SettingsSection(VIP, VipPattern)]

    @hookimpl
    def sla_release_rules(self, settings):
        self.seen.append(settings[VIP])
        rule = settings[VIP]
        if rule is None or not rule.patterns:
            return None
        return [ReleaseRule(name="vip", judge=lambda candidates: {}, description="vip")]


def _butler(never_release: dict | None = None, **agent: object) -> dict:
    return {
        "Butler": {
            "qlikSenseLicense": {"licenseRelease": {"neverRelease": never_release or {}}},
            "licenseAgent": agent,
        }
    }


def test_a_plugin_section_is_validated_and_read_back() -> None:
    data = _butler({"vipPattern": {"patterns": ["vip_*"]}})
    config = parse_config(data, extra=[("vip", VipPlugin())])
    assert config.settings(VIP) == VipPattern(patterns=["vip_*"])
    # Absent from the file: None.
    config = parse_config(_butler(), extra=[("vip", VipPlugin())])
    assert config.settings(VIP) is None


def test_a_mistake_in_a_plugin_section_names_the_key_and_value() -> None:
    data = _butler({"vipPattern": {"patterns": "vip_*", "patern": 1}})
    with pytest.raises(ConfigError) as info:
        parse_config(data, extra=[("vip", VipPlugin())])
    base = "Butler.qlikSenseLicense.licenseRelease.neverRelease.vipPattern"
    assert info.value.problems == [
        f"{base}.patterns: got 'vip_*'; expected a list (lines starting with '- ')",
        f"{base}.patern: unknown key; did you mean 'patterns'? allowed keys here: patterns",
    ]


def test_a_key_of_a_plugin_that_is_not_loaded_is_an_error() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_butler({"vipPattern": {"patterns": ["vip_*"]}}))
    [problem] = info.value.problems
    assert problem.startswith(
        "Butler.qlikSenseLicense.licenseRelease.neverRelease.vipPattern: unknown key; no loaded"
        " plugin reads it"
    )


def test_two_plugins_may_not_claim_one_path() -> None:
    with pytest.raises(ConfigError, match=f"plugin vip2: {VIP} is already owned by plugin vip"):
        parse_config(_butler(), extra=[("vip", VipPlugin()), ("vip2", VipPlugin())])


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("qlikSenseLicense.licenseRelease.enable", "is a key of the core"),
        ("qlikSenseLicense.nowhere.rule", "there is no section 'nowhere'"),
        ("qlikSenseLicense.licenseRelease.dryRun.x", "dryRun is a value, not a section"),
        ("Butler.thing", "without 'Butler.'"),
        ("a..b", "is not a dotted key path"),
    ],
)
def test_the_host_rejects_a_path_it_cannot_place(path: str, why: str) -> None:
    class Bad:
        @hookimpl
        def sla_settings(self):
            return [SettingsSection(path, VipPattern)]

    with pytest.raises(ConfigError, match=why):
        parse_config(_butler(), extra=[("bad", Bad())])


def test_hooks_receive_their_own_settings_per_site(tmp_path: Path) -> None:
    data = _butler({"vipPattern": {"patterns": ["shared_*"]}})
    data["Butler"]["licenseAgent"]["sites"] = [
        {
            "name": site,
            "configQRS": {"host": f"{site}.example.com"},
            "cert": {"clientCert": "c.pem", "clientCertKey": "k.pem", "clientCertCA": "r.pem"},
            **(
                {"qlikSenseLicense": {"licenseRelease": {"neverRelease": override}}}
                if override
                else {}
            ),
        }
        for site, override in (("eu", {"vipPattern": {"patterns": ["eu_*"]}}), ("us", None))
    ]
    plugin = VipPlugin()
    plugin.seen = []
    config = parse_config(data, source=tmp_path / "c.yaml", extra=[("vip", plugin)])
    host = build_plugin_host(config)
    for site in config.sites():
        rules, errors = host.release_rules(config, site)
        assert [r.name for r in rules] == ["vip"] and errors == {}
    assert plugin.seen == [VipPattern(patterns=["eu_*"]), VipPattern(patterns=["shared_*"])]


def test_a_third_party_license_type_can_be_enabled_for_release() -> None:
    class UserAccessSettings(LicenseTypeRelease):
        """Release settings of user access allocations."""

    class UserAccess:
        @hookimpl
        def sla_settings(self):
            path = "qlikSenseLicense.licenseRelease.licenseType.userAccessTest"
            return [SettingsSection(path, UserAccessSettings)]

    data = _butler()
    data["Butler"]["qlikSenseLicense"]["licenseRelease"]["licenseType"] = {
        "userAccessTest": {"enable": True, "releaseThresholdDays": 40}
    }
    config = parse_config(data, extra=[("ua", UserAccess())])
    [site_type] = [
        (name, lt.release_threshold_days)
        for name, lt in config.license_release.license_type.enabled().items()
    ]
    assert site_type == ("userAccessTest", 40)
    schema = json_schema(config)
    types = schema["$defs"]["LicenseTypes"]["properties"]
    assert "userAccessTest" in types


def test_a_drop_in_plugin_file_brings_its_settings(tmp_path: Path) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "vipfile.py").write_text(
        textwrap.dedent(
            f"""
            from pydantic import BaseModel, ConfigDict
            from agent.hookspecs import hookimpl
            from agent.models import SettingsSection

            class Vip(BaseModel):
                model_config = ConfigDict(extra="forbid", frozen=True)
                patterns: list[str] = []

            @hookimpl
            def sla_settings():
                return [SettingsSection({VIP!r}, Vip)]
            """
        )
    )
    data = _butler({"vipPattern": {"patterns": ["a"]}}, plugins={"paths": ["plugins"]})
    config = parse_config(data, source=tmp_path / "config.yaml")
    assert config.settings(VIP).patterns == ["a"]


def test_secrets_in_a_plugin_section_are_masked() -> None:
    from agent.logging import config_secrets

    class Hook(BaseModel):
        model_config = ConfigDict(extra="forbid")
        url: str = ""
        api_token: str = ""
        headers: dict[str, str] = {}

    class HookPlugin:
        @hookimpl
        def sla_settings(self):
            return [SettingsSection("licenseAgent.destinations.hook", Hook, per_site=False)]

    data = _butler()
    data["Butler"]["licenseAgent"]["destinations"] = {
        "hook": {
            "url": "https://h.example.com/x",
            "api_token": "tok-123456",
            "headers": {"Authorization": "Bearer abcdef"},
        }
    }
    config = parse_config(data, extra=[("hook", HookPlugin())])
    secrets = config_secrets(config)
    assert "tok-123456" in secrets and "Bearer abcdef" in secrets
    assert "https://h.example.com/x" not in secrets
