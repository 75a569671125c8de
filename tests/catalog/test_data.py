"""The vendored data files, read raw (not through the loader), and the loader's refusals."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from importlib.resources import files
from pathlib import Path

import pytest
import yaml

from residency.catalog import CatalogError, read_catalog

DATA = files("residency.catalog").joinpath("data")


def raw_csv(name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(DATA.joinpath(name).read_text(encoding="utf-8"))))


@pytest.fixture(scope="module")
def countries() -> dict[str, dict[str, str]]:
    return {row["code"]: row for row in raw_csv("countries.csv")}


@pytest.fixture(scope="module")
def providers() -> dict[str, dict[str, str]]:
    return {row["provider_id"]: row for row in raw_csv("providers.csv")}


@pytest.fixture(scope="module")
def regions() -> list[dict[str, str]]:
    return raw_csv("regions.csv")


@pytest.fixture(scope="module")
def groups() -> dict[str, dict[str, object]]:
    loaded = yaml.safe_load(DATA.joinpath("groups.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_countries_are_the_iso_3166_1_alpha_2_set(countries: dict[str, dict[str, str]]) -> None:
    codes = list(countries)
    assert len(codes) == 249  # every officially assigned code
    assert len(raw_csv("countries.csv")) == 249  # so no duplicates were folded away
    assert all(len(c) == 2 and c.isupper() and c.isalpha() for c in codes)
    # Codes people commonly get wrong are not there: UK (GB), EL (GR), EU (a group).
    assert {"UK", "EL", "EU"}.isdisjoint(codes)
    assert countries["GB"]["name"] == "United Kingdom"
    assert countries["NO"]["name"] == "Norway"


def test_no_duplicate_provider_region_pairs(regions: list[dict[str, str]]) -> None:
    pairs = Counter((r["provider_id"], r["region_id"]) for r in regions)
    assert [p for p, n in pairs.items() if n > 1] == []
    assert len(pairs) == 509


def test_every_region_provider_exists(
    regions: list[dict[str, str]], providers: dict[str, dict[str, str]]
) -> None:
    assert {r["provider_id"] for r in regions} - set(providers) == set()


def test_every_country_code_used_is_in_countries_csv(
    regions: list[dict[str, str]],
    providers: dict[str, dict[str, str]],
    groups: dict[str, dict[str, object]],
    countries: dict[str, dict[str, str]],
) -> None:
    used = {r["country"] for r in regions if r["country"]}
    used |= {p["hq_country"] for p in providers.values() if p["hq_country"]}
    for body in groups.values():
        members = body["members"]
        assert isinstance(members, list)
        used |= set(members)
    assert used - set(countries) == set()


def test_region_continent_matches_its_country(
    regions: list[dict[str, str]], countries: dict[str, dict[str, str]]
) -> None:
    wrong = [
        (r["provider_id"], r["region_id"], r["country"], r["continent"])
        for r in regions
        if r["country"] and r["continent"] != countries[r["country"]]["continent"]
    ]
    assert wrong == []


def test_hong_kong_macau_taiwan_are_not_folded_into_cn(regions: list[dict[str, str]]) -> None:
    by_key = {(r["provider_id"], r["region_id"]): r["country"] for r in regions}
    assert by_key["aws", "ap-east-1"] == "HK"
    assert by_key["alibaba", "cn-hongkong"] == "HK"
    assert by_key["gcp", "asia-east1"] == "TW"


@pytest.mark.parametrize(
    ("provider", "hq"),
    [
        ("alibaba", "CN"),
        ("tencent", "CN"),
        ("huawei", "CN"),
        ("baidu", "CN"),
        ("kingsoft", "CN"),
        ("ucloud", "CN"),
        ("china_telecom", "CN"),
        ("volcengine", "CN"),
        ("oci", "US"),
        ("aws", "US"),
        ("hetzner", "DE"),
        ("ovhcloud", "FR"),
        ("self", ""),
    ],
)
def test_vendor_headquarters(providers: dict[str, dict[str, str]], provider: str, hq: str) -> None:
    assert providers[provider]["hq_country"] == hq


def by_key(regions: list[dict[str, str]]) -> dict[tuple[str, str], dict[str, str]]:
    return {(r["provider_id"], r["region_id"]): r for r in regions}


def members(row: dict[str, str]) -> set[str]:
    return set(row["countries"].split(";")) if row["countries"] else set()


def test_multi_country_regions_list_their_members(
    regions: list[dict[str, str]], groups: dict[str, dict[str, object]]
) -> None:
    rows = by_key(regions)
    eu = set(groups["EU"]["members"])  # type: ignore[call-overload]
    assert members(rows["gcp", "eu"]) == eu
    assert members(rows["cloudflare", "jurisdiction-eu"]) == eu
    assert members(rows["gcp", "eur4"]) == {"FI", "NL"}
    assert members(rows["ibm", "eu"]) == {"NL", "DE", "IT"}
    assert members(rows["ibm", "ap"]) == {"JP", "AU"}
    assert rows["ibm", "ap"]["continent"] == ""  # Tokyo/Osaka and Sydney span two continents
    # GCS `asia` is conservative: Hong Kong has a Google region, so it is a possible member.
    assert "HK" in members(rows["gcp", "asia"])
    # Multi-region inside one country: the country is set and the member list repeats it.
    assert (rows["gcp", "us"]["country"], members(rows["gcp", "us"])) == ("US", {"US"})


def test_r2_location_hints_stay_unprovable(regions: list[dict[str, str]]) -> None:
    hints = [
        r
        for r in regions
        if r["provider_id"] == "cloudflare" and not r["region_id"].startswith("jurisdiction-")
    ]
    assert {r["region_id"] for r in hints} == {"auto", "wnam", "enam", "weur", "eeur", "apac", "oc"}
    assert all(r["country"] == "" and r["countries"] == "" for r in hints)


def test_a_region_with_members_has_no_other_country(regions: list[dict[str, str]]) -> None:
    wrong = [
        (r["provider_id"], r["region_id"])
        for r in regions
        if r["countries"] and r["country"] and members(r) != {r["country"]}
    ]
    assert wrong == []


def test_every_price_names_its_source_and_month(regions: list[dict[str, str]]) -> None:
    for r in regions:
        key = (r["provider_id"], r["region_id"])
        priced = bool(r["storage_usd_per_gb_month"] or r["egress_usd_per_gb_internet"])
        if priced:
            assert r["price_source"], key
            assert re.fullmatch(r"20\d\d-(0[1-9]|1[0-2])", r["price_date"]), key
        else:
            assert (r["price_source"], r["price_date"]) == ("", ""), key


@pytest.mark.parametrize(
    ("provider", "region", "operator", "operator_hq", "parent_hq", "share"),
    [
        ("aws", "cn-north-1", "Beijing Sinnet Technology", "CN", "CN", "100"),
        ("aws", "cn-northwest-1", "Ningxia Western Cloud Data Technology", "CN", "CN", "100"),
        ("aws", "eusc-de-east-1", "AWS European Sovereign Cloud GmbH", "DE", "US", "100"),
        ("azure", "chinaeast2", "Shanghai Blue Cloud Technology", "CN", "CN", "100"),
        ("azure", "bleufrancecentral", "Bleu", "FR", "FR", "100"),
        ("azure", "deloscloudgermanycentral", "Delos Cloud GmbH", "DE", "DE", "100"),
        ("oci", "eu-frankfurt-2", "Oracle EU Sovereign Cloud", "DE", "US", "100"),
        ("oci", "eu-madrid-2", "Oracle EU Sovereign Cloud", "ES", "US", "100"),
        ("gcp", "u-france-east1", "S3NS", "FR", "FR", ""),  # Thales majority, stake unpublished
        ("alibaba", "ap-southeast-1", "Alibaba Cloud (Singapore)", "SG", "CN", "100"),
        ("ovhcloud", "us-east-va", "OVH US LLC", "US", "FR", "100"),
    ],
)
def test_partner_and_subsidiary_operators(
    regions: list[dict[str, str]],
    provider: str,
    region: str,
    operator: str,
    operator_hq: str,
    parent_hq: str,
    share: str,
) -> None:
    row = by_key(regions)[provider, region]
    assert row["operator"].startswith(operator)
    assert (row["operator_hq"], row["parent_hq"], row["parent_share"]) == (
        operator_hq,
        parent_hq,
        share,
    )


def test_licensors_are_not_recorded_as_owners(regions: list[dict[str, str]]) -> None:
    rows = by_key(regions)
    for key in (("azure", "bleufrancecentral"), ("azure", "deloscloudgermanycentral")):
        assert "Microsoft" not in rows[key]["parent"]
    assert "Amazon" not in rows["aws", "cn-north-1"]["parent"]
    assert "Google" not in rows["gcp", "u-france-east1"]["parent"]


def test_every_group_has_a_citation_and_quoted_norway(groups: dict[str, dict[str, object]]) -> None:
    for name, body in groups.items():
        assert isinstance(body.get("citation"), str), name
        assert str(body["citation"]).strip(), name
    assert "NO" in groups["EEA"]["members"]  # type: ignore[operator]
    assert False not in groups["EEA"]["members"]  # type: ignore[operator]


# -- the loader refuses data that would mislead a decision -----------------------------------------


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    target = tmp_path / "data"
    target.mkdir()
    for name in ("countries.csv", "providers.csv", "regions.csv", "groups.yaml"):
        target.joinpath(name).write_text(DATA.joinpath(name).read_text(encoding="utf-8"))
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"fixture text not found in {path.name}: {old!r}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_unmodified_copy_loads(data_copy: Path) -> None:
    cat = read_catalog(data_copy)
    assert len(cat.regions) == 509
    assert len(cat.providers) == 26


SG = "alibaba,ap-southeast-1,Singapore,SG,,Asia,"
US_EAST = "aws,us-east-1,Northern Virginia,US,,North America,s3.us-east-1.amazonaws.com,"
BEIJING = 'CN,100,"partition=aws-cn; China (Beijing)'
GCS_US = "gcp,us,,US,US,North America,"
GCS_EU = "gcp,eu,,,AT;BE;"
EUSC_PRICES = "s3.eusc-de-east-1.amazonaws.eu,,,,,"


@pytest.mark.parametrize(
    ("filename", "old", "new", "fragment"),
    [
        ("regions.csv", SG, SG.replace(",SG,", ",UK,"), "country 'UK' is not in countries.csv"),
        ("regions.csv", SG, SG.replace(",SG,", ",sg,"), "'sg' is not an ISO 3166-1 alpha-2"),
        ("regions.csv", SG, SG.replace("Asia", "Europe"), "is in SG, which is in Asia"),
        ("regions.csv", SG, SG.replace("Asia", "Asai"), "unknown continent 'Asai'"),
        ("regions.csv", SG, SG.replace("alibaba", "alibabba"), "unknown provider 'alibabba'"),
        (
            "regions.csv",
            "\nalibaba,ap-southeast-1,",
            "\nalibaba,ap-southeast-1,x,SG,,Asia,e,,,,,,,,,,dup\nalibaba,ap-southeast-1,",
            "duplicate region alibaba ap-southeast-1",
        ),
        ("regions.csv", US_EAST + "0.023,", US_EAST + "-1,", "must be a non-negative number"),
        ("regions.csv", US_EAST + "0.023,", US_EAST + "cheap,", "'cheap' is not a number"),
        # member countries: known ISO codes, consistent with country and continent
        ("regions.csv", GCS_EU, "gcp,eu,,,AT;ZZ;", "countries member 'ZZ' is not in countries"),
        ("regions.csv", GCS_EU, "gcp,eu,,,AT;AT;", "lists a country twice"),
        ("regions.csv", GCS_EU, "gcp,eu,,,AT;;", "has an empty member"),
        ("regions.csv", GCS_EU, "gcp,eu,,,JP;BE;", "countries JP are not in Europe"),
        ("regions.csv", GCS_US, "gcp,us,,US,US;CA,North America,", "contradicts country US"),
        ("regions.csv", GCS_US, "gcp,us,,,US,North America,", "put it in `country` instead"),
        # who runs it: ISO headquarters, a parent, a whole percent
        ("regions.csv", BEIJING, BEIJING.replace(",100,", ",150,"), "must be a whole percent"),
        ("regions.csv", BEIJING, BEIJING.replace(",100,", ",half,"), "must be a whole percent"),
        ("regions.csv", BEIJING, BEIJING.replace("CN,100", "PRC,100"), "'PRC' is not an ISO"),
        (
            "regions.csv",
            '"Beijing Sinnet Technology Co., Ltd.",CN,"Beijing',
            '"Beijing Sinnet Technology Co., Ltd.",,"Beijing',
            "needs an operator_hq",
        ),
        (
            "regions.csv",
            ',"Beijing Sinnet Technology Co., Ltd.",CN,100,',
            ",,,100,",
            "needs its ultimate parent and parent_hq",
        ),
        (
            "regions.csv",
            EUSC_PRICES + "AWS European Sovereign Cloud GmbH,",
            EUSC_PRICES + ",",
            "set operator too",
        ),
        # every price names its source and month, and only prices do
        (
            "regions.csv",
            "(approximate list prices),2026-11,,,,,,partition=aws; US East (N. Virginia);",
            "(approximate list prices),Nov 2026,,,,,,partition=aws; US East (N. Virginia);",
            "price_date 'Nov 2026' must be a month",
        ),
        (
            "regions.csv",
            US_EAST + "0.023,0.09,shared/catalog 2026-11-23 (approximate list prices),",
            US_EAST + "0.023,0.09,,",
            "a price needs a price_source",
        ),
        (
            "regions.csv",
            EUSC_PRICES,
            "s3.eusc-de-east-1.amazonaws.eu,,,guess,2026-11,",
            "need a price to describe",
        ),
        ("regions.csv", "provider_id,region_id", "provider,region_id", "expected header"),
        (
            "providers.csv",
            "Alibaba Cloud (Aliyun),CN,",
            "Alibaba Cloud (Aliyun),,",
            "needs an hq_country",
        ),
        (
            "providers.csv",
            "Alibaba Cloud (Aliyun),CN,",
            "Alibaba Cloud (Aliyun),PRC,",
            "'PRC' is not an ISO",
        ),
        ("providers.csv", ",yes,oss,", ",yes,ossx,", "opendal_scheme 'ossx'"),
        (
            "countries.csv",
            "SG,Singapore,Asia",
            "SG,Singapore,Asia\nSG,Singapore,Asia",
            "duplicate country code SG",
        ),
        ("groups.yaml", 'IS, LI, "NO"]', "IS, LI, NO]", "quote codes YAML reads as booleans"),
        ("groups.yaml", "members: [CN]", "members: [CN, ZZ]", "'ZZ' is not in countries.csv"),
        ("groups.yaml", "FIVE_EYES:", "five_eyes:", "must be upper case"),
        (
            "groups.yaml",
            "  aliases: [DOJ_COUNTRIES_OF_CONCERN]",
            "  aliases: [EU]",
            "EU is already used",
        ),
        (
            "groups.yaml",
            '  citation: "UKUSA Agreement',
            '  source: "UKUSA Agreement',
            "unknown field(s) source",
        ),
    ],
)
def test_loader_rejects_bad_data(
    data_copy: Path, filename: str, old: str, new: str, fragment: str
) -> None:
    edit(data_copy / filename, old, new)
    with pytest.raises(CatalogError) as err:
        read_catalog(data_copy)
    assert fragment in str(err.value)
    assert str(err.value).startswith(filename)


def test_loader_reports_the_line_of_a_bad_row(data_copy: Path) -> None:
    edit(data_copy / "regions.csv", SG, SG.replace(",SG,", ",UK,"))
    line = next(
        i
        for i, text in enumerate((data_copy / "regions.csv").read_text().splitlines(), start=1)
        if text.startswith("alibaba,ap-southeast-1,")
    )
    with pytest.raises(CatalogError, match=rf"^regions\.csv:{line}: "):
        read_catalog(data_copy)


def test_loader_rejects_a_group_without_citation(data_copy: Path) -> None:
    path = data_copy / "groups.yaml"
    lines = [
        text
        for text in path.read_text().splitlines()
        if not text.startswith('  citation: "UKUSA Agreement')
    ]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CatalogError, match="group FIVE_EYES: a citation is required"):
        read_catalog(data_copy)


def test_loader_reports_a_missing_file(data_copy: Path) -> None:
    (data_copy / "groups.yaml").unlink()
    with pytest.raises(CatalogError, match=r"catalog file groups\.yaml is missing"):
        read_catalog(data_copy)
