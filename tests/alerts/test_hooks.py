"""The alert hooks through a third-party drop-in plugin: ``sla_alerts`` adds a condition of its
own and a failing implementation does not stop the others; a third-party channel (a destination
of the ``alert`` feature) receives the alerts; ``sla_alert_view`` feeds the HTML report."""

from __future__ import annotations

import json
import textwrap

from agent.cli import main
from tests.alerts.test_cli import low_availability, simulator, write_config  # noqa: F401

DROP_IN = textwrap.dedent(
    '''
    """A third party's KPI alert, a broken alert plugin and a channel writing JSON lines."""
    import json
    from pathlib import Path

    from agent.alerts import FIRING, KIND_ACCESS, Alert
    from agent.hookspecs import hookimpl
    from agent.models import AlertBatch

    OUT = Path(__file__).with_name("channel.jsonl")
    COMMITS = Path(__file__).with_name("commits.txt")


    class JsonChannel:
        name = "json-channel"
        features = frozenset({"alert"})

        def write(self, points):
            with OUT.open("a", encoding="utf-8") as handle:
                for point in points:
                    alert = Alert.from_point(point)
                    handle.write(json.dumps({"key": alert.key, "state": alert.state}) + "\\n")

        def describe(self):
            return "a test channel"

        def close(self):
            pass


    @hookimpl
    def sla_destinations(config):
        return [JsonChannel()]


    @hookimpl
    def sla_alerts(site, points, now):
        analyzer = [p for p in points if p.tags.get("license_type") == "analyzer"]
        alert = Alert(key="kpi:analyzer-seen", kind=KIND_ACCESS, state=FIRING, time=now,
                      site=site.name, title="KPI", text=f"{len(analyzer)} analyzer point(s)")

        def commit():
            # Called only once the alert is in the outbox: the channel has it already.
            assert OUT.exists(), "commit before delivery"
            COMMITS.write_text("committed", encoding="utf-8")

        return AlertBatch(points=[alert.to_point()], commit=commit)
    '''
)

BROKEN = textwrap.dedent(
    """
    from agent.hookspecs import hookimpl

    @hookimpl
    def sla_alerts(points):
        raise RuntimeError("the KPI service is down")
    """
)


def test_third_party_alerts_and_channel(simulator, alert_certs, tmp_path, capsys):  # noqa: F811
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "kpi_alerts.py").write_text(DROP_IN, encoding="utf-8")
    (folder / "broken_alerts.py").write_text(BROKEN, encoding="utf-8")
    low_availability(simulator)
    config = write_config(
        tmp_path,
        simulator,
        alert_certs,
        licenseMonitor={
            "alert": {"enable": True, "licenseType": {"professional": {"availableBelow": 10}}}
        },
    )
    text = config.read_text(encoding="utf-8").replace(
        "licenseAgent:\n", f"licenseAgent:\n    plugins:\n      paths: ['{folder}']\n", 1
    )
    config.write_text(text, encoding="utf-8")
    # The run itself goes on (as with a failing collector): its points and the other
    # plugins' alerts are delivered, and the failing plugin is reported by name.
    code = main(["monitor", "--once", "-c", str(config)])
    captured = capsys.readouterr()
    assert "plugin broken_alerts failed: RuntimeError: the KPI service is down" in captured.out
    assert code == 0
    received = [json.loads(line) for line in (folder / "channel.jsonl").read_text().splitlines()]
    assert {"key": "kpi:analyzer-seen", "state": "firing"} in received
    assert {"key": "professional:available_below", "state": "firing"} in received
    assert (folder / "commits.txt").read_text() == "committed"


def test_report_draws_what_sla_alert_view_gives(simulator, alert_certs, tmp_path, capsys):  # noqa: F811
    low_availability(simulator)
    config = write_config(
        tmp_path,
        simulator,
        alert_certs,
        licenseMonitor={
            "alert": {"enable": True, "licenseType": {"professional": {"availableBelow": 10}}}
        },
    )
    text = config.read_text(encoding="utf-8").replace(
        "licenseAgent:\n",
        "licenseAgent:\n    destinations:\n      sqlite:\n        enable: true\n",
        1,
    )
    config.write_text(text, encoding="utf-8")
    assert main(["monitor", "--once", "-c", str(config)]) == 0
    page = tmp_path / "report.html"
    assert main(["report", "-c", str(config), "--out", str(page)]) == 0
    html = page.read_text(encoding="utf-8")
    assert 'class="threshold"' in html and "alert below 10" in html
    assert "Active alerts" in html and "licenses available" in html
