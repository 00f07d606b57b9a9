"""The JSON lines destination: a file appended to, or standard output."""

from __future__ import annotations

import json

import pytest

from agent.models import DestinationError
from agent.plugins import build_plugin_host

from .conftest import monitor_point, release_point


def test_file_gets_one_object_per_point_appended(make_config, tmp_path):
    config = make_config(
        {"licenseAgent": {"destinations": {"jsonl": {"enable": True, "path": "out/points.jsonl"}}}}
    )
    [dest] = build_plugin_host(config).destinations(config)
    assert dest.describe() == f"JSON lines file {tmp_path / 'out' / 'points.jsonl'}"
    dest.write([monitor_point(1)])
    dest.write([release_point(1)])
    lines = (tmp_path / "out" / "points.jsonl").read_text("utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        monitor_point(1).to_dict(),
        release_point(1).to_dict(),
    ]
    assert json.loads(lines[1])["tags"]["user"] == "ACME\\user1"


def test_stdout(make_config, capsys):
    config = make_config(
        {"licenseAgent": {"destinations": {"jsonl": {"enable": True, "path": "-"}}}}
    )
    [dest] = build_plugin_host(config).destinations(config)
    assert dest.describe() == "JSON lines on standard output"
    dest.write([monitor_point(1), monitor_point(2)])
    out = capsys.readouterr().out.splitlines()
    assert [json.loads(x)["fields"]["allocated"] for x in out] == [1.0, 2.0]


def test_unwritable_file_is_a_destination_error(make_config, tmp_path):
    (tmp_path / "blocker").write_text("a file")
    config = make_config(
        {"licenseAgent": {"destinations": {"jsonl": {"enable": True, "path": "blocker/x.jsonl"}}}}
    )
    [dest] = build_plugin_host(config).destinations(config)
    with pytest.raises(DestinationError, match="cannot append to"):
        dest.write([monitor_point(1)])
