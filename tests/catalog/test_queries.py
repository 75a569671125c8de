"""Catalog look-ups: providers, regions, country filters, groups and their error messages."""

from __future__ import annotations

import pytest

from residency.catalog import Catalog, CatalogError, load_catalog

CONTRACT_GROUPS = {
    "EU",
    "EEA",
    "GDPR_ADEQUATE",
    "FIVE_EYES",
    "COUNTRIES_OF_CONCERN",
    "PADFA_FOREIGN_ADVERSARIES",
    "COMMERCE_FOREIGN_ADVERSARIES",
    "ITAR_PROSCRIBED",
    "CHINA_MAINLAND",
    "UNITED_STATES",
}


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return load_catalog()


def test_load_is_cached(cat: Catalog) -> None:
    assert load_catalog() is cat


def test_alibaba_singapore_is_ap_southeast_1_in_sg(cat: Catalog) -> None:
    region = cat.region("alibaba", "ap-southeast-1")
    assert (region.city, region.country, region.continent) == ("Singapore", "SG", "Asia")
    assert region.endpoint == "oss-ap-southeast-1.aliyuncs.com"
    sg = cat.find_regions(provider="alibaba", country="SG")
    assert [r.id for r in sg] == ["ap-southeast-1"]


def test_oci_ashburn_is_in_us_with_prices(cat: Catalog) -> None:
    region = cat.region("oci", "us-ashburn-1")
    assert (region.city, region.country, region.continent) == ("Ashburn", "US", "North America")
    assert region.storage_usd_per_gb_month == pytest.approx(0.0255)
    assert isinstance(region.egress_usd_per_gb, float)
    assert cat.provider("oci").hq_country == "US"


@pytest.mark.parametrize(
    "provider",
    ["alibaba", "tencent", "huawei", "baidu", "kingsoft", "ucloud", "china_telecom", "volcengine"],
)
def test_prc_vendors_are_headquartered_in_cn(cat: Catalog, provider: str) -> None:
    assert cat.provider(provider).hq_country == "CN"


def test_self_provider_has_no_vendor_country(cat: Catalog) -> None:
    own = cat.provider("self")
    assert own.is_self
    assert own.hq_country is None


def test_unknown_price_is_none_not_zero(cat: Catalog) -> None:
    assert cat.region("alibaba", "ap-southeast-1").storage_usd_per_gb_month is None
    # Zero is a real price (R2 and Wasabi charge no egress) and must survive parsing.
    assert cat.region("cloudflare", "jurisdiction-eu").egress_usd_per_gb == 0.0


def test_find_by_provider_returns_only_that_provider(cat: Catalog) -> None:
    found = cat.find_regions(provider="oci")
    assert found
    assert {r.provider for r in found} == {"oci"}
    assert len(found) == sum(1 for r in cat.regions if r.provider == "oci")


def test_find_by_country_is_case_insensitive(cat: Catalog) -> None:
    upper = cat.find_regions(country="SG")
    assert upper == cat.find_regions(country="sg")
    assert {r.country for r in upper} == {"SG"}
    assert {"aws", "alibaba", "oci", "huawei"} <= {r.provider for r in upper}


def test_find_by_group_keeps_regions_whose_every_country_is_a_member(cat: Catalog) -> None:
    eu = cat.find_regions(group="@eu")
    assert all(r.countries and r.countries <= cat.groups["EU"] for r in eu)
    countries = {r.country for r in eu}
    assert {"DE", "FR", "IE"} <= countries
    assert "GB" not in countries
    assert "CH" not in countries
    keys = {(r.provider, r.id) for r in eu}
    assert ("aws", "eu-central-1") in keys
    # GCS `eu` and R2's EU jurisdiction only use EU member states, so they are in the group...
    assert {("gcp", "eu"), ("cloudflare", "jurisdiction-eu"), ("gcp", "eur4")} <= keys
    # ...but an R2 location hint (members unknown) never is, and neither is a single country.
    assert ("cloudflare", "weur") not in keys
    assert ("gcp", "eu") not in {(r.provider, r.id) for r in cat.find_regions(country="DE")}


def test_multi_country_region_with_a_non_member_is_outside_the_group(cat: Catalog) -> None:
    coc = {(r.provider, r.id) for r in cat.find_regions(group="COUNTRIES_OF_CONCERN")}
    assert ("gcp", "asia") not in coc  # HK is a possible member, JP is not a country of concern
    five_eyes = {(r.provider, r.id) for r in cat.find_regions(group="FIVE_EYES")}
    assert ("ibm", "ap") not in five_eyes  # Sydney is, Tokyo is not
    assert ("gcp", "us") in five_eyes


def test_prc_brands_are_owned_from_cn_wherever_their_regions_are(cat: Catalog) -> None:
    # 28 CFR 202 and PADFA look through local subsidiaries to the owner: none may lose it.
    prc = {p.id for p in cat.providers.values() if p.hq_country == "CN"}
    regions = [r for r in cat.regions if r.provider in prc]
    assert regions
    assert all(r.parent_hq == "CN" and r.parent_share == 100 for r in regions)
    ali_sg = cat.region("alibaba", "ap-southeast-1")
    assert (ali_sg.operator_hq, ali_sg.parent) == ("SG", "Alibaba Group Holding Ltd.")


def test_every_operator_and_parent_hq_is_a_known_country(cat: Catalog) -> None:
    for r in cat.regions:
        if r.provider == "self":
            assert (r.operator_hq, r.parent_hq, r.parent_share) == (None, None, None)
            continue
        assert r.operator, (r.provider, r.id)
        assert r.operator_hq in cat.countries, (r.provider, r.id)
        assert r.parent, (r.provider, r.id)
        assert r.parent_hq in cat.countries, (r.provider, r.id)
        assert r.parent_share is None or 0 <= r.parent_share <= 100


def test_filters_combine(cat: Catalog) -> None:
    found = cat.find_regions(provider="aws", group="COUNTRIES_OF_CONCERN")
    assert {r.id for r in found} == {"ap-east-1", "cn-north-1", "cn-northwest-1"}
    assert cat.find_regions(provider="aws", country="CN", group="EU") == []


def test_countries_of_concern_has_exactly_the_eight_codes(cat: Catalog) -> None:
    assert cat.groups["COUNTRIES_OF_CONCERN"] == {"CN", "HK", "MO", "CU", "IR", "KP", "RU", "VE"}
    details = cat.group_details("countries_of_concern")
    assert "28 CFR 202.601" in details.citation


def test_built_in_groups_are_the_contract_names(cat: Catalog) -> None:
    assert set(cat.groups) == CONTRACT_GROUPS
    assert len(cat.groups["EU"]) == 27
    assert cat.groups["EEA"] == cat.groups["EU"] | {"IS", "LI", "NO"}
    assert cat.groups["FIVE_EYES"] == {"AU", "CA", "NZ", "GB", "US"}
    assert cat.groups["CHINA_MAINLAND"] == {"CN"}
    assert {"CA", "US"}.isdisjoint(cat.groups["GDPR_ADEQUATE"])  # partial adequacy only
    assert {"BR", "GB", "JP", "KR", "CH"} <= cat.groups["GDPR_ADEQUATE"]


def test_presets_alias_resolves_to_the_same_group(cat: Catalog) -> None:
    assert cat.expand("@DOJ_COUNTRIES_OF_CONCERN") == cat.groups["COUNTRIES_OF_CONCERN"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("US", {"US"}),
        (" de ", {"DE"}),
        ("@FIVE_EYES", {"AU", "CA", "NZ", "GB", "US"}),
        ("five_eyes", {"AU", "CA", "NZ", "GB", "US"}),
        ("China_Mainland", {"CN"}),
    ],
)
def test_expand_codes_and_groups(cat: Catalog, spec: str, expected: set[str]) -> None:
    assert cat.expand(spec) == expected


def test_expand_eu_is_the_group_not_a_code(cat: Catalog) -> None:
    assert cat.expand("EU") == cat.groups["EU"]


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("@US", "write it without '@'"),
        ("@EUU", "did you mean 'EU'"),
        ("countries_of_concen", "did you mean 'COUNTRIES_OF_CONCERN'"),
        ("Germany", "DE (Germany)"),
        ("XX", "unknown country or group 'XX'"),
        ("", "unknown country or group"),
    ],
)
def test_expand_rejects_unknown_with_a_hint(cat: Catalog, spec: str, fragment: str) -> None:
    with pytest.raises(CatalogError, match="unknown") as err:
        cat.expand(spec)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_country_names(cat: Catalog) -> None:
    assert cat.country_name("KR") == "South Korea"
    assert cat.country_name("hk") == "Hong Kong"
    assert cat.country("TW").continent == "Asia"
    with pytest.raises(CatalogError, match="unknown country code 'UK'"):
        cat.country_name("UK")


def test_unknown_provider_suggests_close_match(cat: Catalog) -> None:
    with pytest.raises(CatalogError, match="did you mean 'alibaba'"):
        cat.provider("alibab")
    with pytest.raises(CatalogError, match="residency catalog providers"):
        cat.provider("zzzz")


def test_unknown_region_suggests_close_match(cat: Catalog) -> None:
    with pytest.raises(
        CatalogError, match=r"^unknown region 'us-east-l' for provider aws; did you mean "
    ) as err:
        cat.region("aws", "us-east-l")
    assert "'us-east-1'" in str(err.value)


def test_region_of_another_provider_names_that_provider(cat: Catalog) -> None:
    with pytest.raises(CatalogError, match="'cn-hangzhou' is a region of alibaba"):
        cat.region("aws", "cn-hangzhou")


@pytest.mark.parametrize(
    ("filters", "fragment"),
    [
        ({"provider": "orcale"}, "unknown provider 'orcale'"),
        ({"country": "ZZ"}, "unknown country code 'ZZ'"),
        ({"group": "EEAA"}, "did you mean 'EEA'"),
    ],
)
def test_find_regions_rejects_bad_filters(
    cat: Catalog, filters: dict[str, str], fragment: str
) -> None:
    with pytest.raises(CatalogError) as err:
        cat.find_regions(**filters)
    assert fragment in str(err.value)
