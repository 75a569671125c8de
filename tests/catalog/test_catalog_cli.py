"""`residency catalog …` through the real command, as a user runs it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

Cli = Callable[..., Any]

COUNTRIES_OF_CONCERN = {"CN", "HK", "MO", "CU", "IR", "KP", "RU", "VE"}


def test_regions_table_filtered_by_provider_and_country(cli: Cli) -> None:
    result = cli("catalog", "regions", "--provider", "alibaba", "--country", "sg")
    assert result.code == 0, result.stderr
    assert "ap-southeast-1" in result.stdout
    assert "Singapore" in result.stdout
    assert "cn-hangzhou" not in result.stdout
    for header in ("provider", "region", "city", "country", "continent", "$/GB-mo", "$/GB"):
        assert header in result.stdout


def test_regions_json_by_group(cli: Cli) -> None:
    result = cli("catalog", "regions", "--group", "@countries_of_concern", "--json")
    assert result.code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows
    assert {r["country"] for r in rows} <= COUNTRIES_OF_CONCERN
    assert {"alibaba", "aws", "huawei"} <= {r["provider"] for r in rows}
    assert ("aws", "cn-north-1") in {(r["provider"], r["id"]) for r in rows}


def test_regions_json_carries_typed_prices(cli: Cli) -> None:
    result = cli("catalog", "regions", "-p", "oci", "--json")
    assert result.code == 0, result.stderr
    rows = {r["id"]: r for r in json.loads(result.stdout)}
    ashburn = rows["us-ashburn-1"]
    assert ashburn["country"] == "US"
    assert ashburn["country_name"] == "United States"
    assert ashburn["storage_usd_per_gb_month"] == pytest.approx(0.0255)
    assert ashburn["price_source"].startswith("shared/catalog")
    assert ashburn["price_date"] == "2026-11"
    assert rows["us-langley-1"]["storage_usd_per_gb_month"] is None
    assert rows["us-langley-1"]["price_source"] == ""


def test_regions_table_shows_the_operator_and_its_foreign_parent(cli: Cli) -> None:
    result = cli("catalog", "regions", "--provider", "aws", "--country", "CN")
    assert result.code == 0, result.stderr
    assert "operator" in result.stdout
    assert "Beijing Sinnet Technology" in result.stdout
    eusc = cli("catalog", "regions", "--provider", "aws", "--country", "DE")
    assert "AWS European Sovereign Cloud GmbH (DE), 100% Amazon.com Inc. (US)" in eusc.stdout
    assert "Amazon Web Services (US)" in eusc.stdout  # Frankfurt: the provider runs it


def test_regions_table_shows_members_of_multi_country_regions(cli: Cli) -> None:
    result = cli("catalog", "regions", "--provider", "gcp", "--group", "EU")
    assert result.code == 0, result.stderr
    lines = {line.split()[1]: line for line in result.stdout.splitlines() if "gcp " in line}
    assert "EU (27)" in lines["eu"]
    assert "FI NL" in lines["eur4"]


def test_regions_json_carries_members_and_operator(cli: Cli) -> None:
    result = cli("catalog", "regions", "-p", "gcp", "--json")
    assert result.code == 0, result.stderr
    rows = {r["id"]: r for r in json.loads(result.stdout)}
    eu = rows["eu"]
    assert eu["country"] is None
    assert len(eu["countries"]) == 27
    assert eu["countries"] == sorted(eu["countries"])
    assert (eu["operator"], eu["operator_hq"], eu["parent_share"]) == ("Google Cloud", "US", 100)
    s3ns = rows["u-france-east1"]
    assert (s3ns["operator"], s3ns["operator_hq"], s3ns["parent_hq"]) == ("S3NS", "FR", "FR")
    assert s3ns["parent_share"] is None
    assert rows["us-central1"]["countries"] == ["US"]


def test_regions_with_no_match_is_not_an_error(cli: Cli) -> None:
    result = cli("catalog", "regions", "--country", "AQ", "--json")
    assert result.code == 0
    assert json.loads(result.stdout) == []
    table = cli("catalog", "regions", "--country", "AQ")
    assert table.code == 0
    assert "no regions match" in table.stderr


def test_providers_table_and_json(cli: Cli) -> None:
    table = cli("catalog", "providers")
    assert table.code == 0, table.stderr
    assert "Oracle Cloud Infrastructure" in table.stdout
    assert "CN (China)" in table.stdout
    data = json.loads(cli("catalog", "providers", "--json").stdout)
    by_id = {p["id"]: p for p in data}
    assert by_id["alibaba"]["hq_country"] == "CN"
    assert by_id["oci"]["hq_country"] == "US"
    assert by_id["self"]["hq_country"] is None
    assert by_id["aws"]["regions"] == 39


def test_groups_table_and_json(cli: Cli) -> None:
    table = cli("catalog", "groups")
    assert table.code == 0, table.stderr
    assert "COUNTRIES_OF_CONCERN" in table.stdout
    assert "28 CFR 202.601" in table.stdout
    data = {g["name"]: g for g in json.loads(cli("catalog", "groups", "--json").stdout)}
    assert set(data["COUNTRIES_OF_CONCERN"]["members"]) == COUNTRIES_OF_CONCERN
    assert len(data) == 10
    assert set(data["UNITED_STATES"]["members"]) == {"US", "AS", "GU", "MP", "PR", "UM", "VI"}
    assert all(g["citation"] for g in data.values())


def test_countries_of_a_group(cli: Cli) -> None:
    result = cli("catalog", "countries", "--group", "EEA", "--json")
    assert result.code == 0, result.stderr
    codes = {c["code"] for c in json.loads(result.stdout)}
    assert len(codes) == 30
    assert {"NO", "IS", "LI", "DE"} <= codes


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("regions", "--provider", "alibab"), "unknown provider 'alibab'; did you mean 'alibaba'?"),
        (("regions", "--country", "Germany"), "did you mean DE (Germany)"),
        (("regions", "--group", "EUU", "--json"), "unknown country group 'EUU'; did you mean"),
        (("countries", "--group", "NATO"), "known groups: CHINA_MAINLAND"),
    ],
)
def test_bad_filter_exits_2_with_one_line(cli: Cli, args: tuple[str, ...], fragment: str) -> None:
    result = cli("catalog", *args)
    assert result.code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert fragment in lines[0]


def test_help_describes_commands_and_options(cli: Cli) -> None:
    top = cli("catalog", "--help")
    assert top.code == 0
    for command in ("providers", "regions", "groups", "countries"):
        assert command in top.stdout
    regions = cli("catalog", "regions", "--help")
    assert regions.code == 0
    for text in ("--provider", "--country", "--group", "--json", "ISO code", "machine-readable"):
        assert text in regions.stdout
