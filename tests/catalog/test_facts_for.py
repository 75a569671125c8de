"""`Catalog.facts_for`: what the policy engine will believe about a configured location."""

from __future__ import annotations

import pytest

from residency.catalog import Catalog, CatalogError, LocationFacts, load_catalog
from residency.config import LocationConfig


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return load_catalog()


def loc(**fields: str) -> LocationConfig:
    return LocationConfig(**{"name": "here", "scheme": "fs", **fields})


def test_cloud_region_takes_facts_from_the_catalog(cat: Catalog) -> None:
    facts = cat.facts_for(loc(name="ali-sg", provider="alibaba", region="ap-southeast-1"))
    assert facts == LocationFacts(
        name="ali-sg",
        provider="alibaba",
        provider_name="Alibaba Cloud (Aliyun)",
        vendor_hq="CN",
        region="ap-southeast-1",
        city="Singapore",
        country="SG",
        continent="Asia",
        storage_usd_per_gb_month=None,
        egress_usd_per_gb=None,
        countries=frozenset({"SG"}),
        operator="Alibaba Cloud (Singapore) Private Limited",
        operator_hq="SG",
        parent="Alibaba Group Holding Ltd.",
        parent_hq="CN",
        parent_share=100,
    )


def test_provider_run_region_defaults_to_the_provider(cat: Catalog) -> None:
    facts = cat.facts_for(loc(provider="oci", region="us-ashburn-1"))
    assert (facts.operator, facts.operator_hq) == ("Oracle Cloud Infrastructure", "US")
    assert (facts.parent, facts.parent_hq, facts.parent_share) == ("Oracle Corp.", "US", 100)
    assert facts.countries == {"US"}


def test_aws_beijing_is_run_by_sinnet_in_cn(cat: Catalog) -> None:
    facts = cat.facts_for(loc(provider="aws", region="cn-north-1"))
    assert facts.vendor_hq == "US"  # the brand stays Amazon's
    assert facts.operator == "Beijing Sinnet Technology Co., Ltd."
    assert (facts.operator_hq, facts.parent_hq, facts.parent_share) == ("CN", "CN", 100)
    assert "Amazon" not in facts.parent
    assert facts.countries == {"CN"}


def test_aws_european_sovereign_cloud_is_german_with_a_us_parent(cat: Catalog) -> None:
    facts = cat.facts_for(loc(provider="aws", region="eusc-de-east-1"))
    assert (facts.country, facts.operator_hq) == ("DE", "DE")
    assert facts.operator == "AWS European Sovereign Cloud GmbH"
    assert (facts.parent, facts.parent_hq, facts.parent_share) == ("Amazon.com Inc.", "US", 100)


def test_bleu_is_french_owned_not_microsoft(cat: Catalog) -> None:
    facts = cat.facts_for(loc(provider="azure", region="bleufrancecentral"))
    assert (facts.vendor_hq, facts.operator_hq, facts.parent_hq) == ("US", "FR", "FR")
    assert "Microsoft" not in facts.parent


def test_gcs_eu_lists_the_eu_member_states(cat: Catalog) -> None:
    facts = cat.facts_for(loc(provider="gcp", region="eu"))
    assert facts.country is None
    assert facts.countries == cat.group("EU")
    assert not {"GB", "CH"} & facts.countries  # London and Zurich are not EU members


def test_r2_location_hint_has_no_known_countries(cat: Catalog) -> None:
    facts = cat.facts_for(loc(provider="cloudflare", region="weur"))
    assert (facts.country, facts.countries) == (None, frozenset())


def test_oci_ashburn_facts_carry_prices(cat: Catalog) -> None:
    facts = cat.facts_for(loc(provider="oci", region="us-ashburn-1"))
    assert (facts.vendor_hq, facts.country, facts.city) == ("US", "US", "Ashburn")
    assert facts.storage_usd_per_gb_month == pytest.approx(0.0255)
    assert facts.egress_usd_per_gb == pytest.approx(0.0085)


def test_own_data_center_uses_config_country_and_has_no_vendor(cat: Catalog) -> None:
    facts = cat.facts_for(
        loc(name="dc-fsn", provider="self", region="rack-7", country="DE", city="Falkenstein")
    )
    assert facts == LocationFacts(
        name="dc-fsn",
        provider="self",
        provider_name="Self-hosted / on-premises",
        vendor_hq=None,
        region="rack-7",
        city="Falkenstein",
        country="DE",
        continent="Europe",
        countries=frozenset({"DE"}),
        operator="Self-hosted / on-premises",
        operator_hq=None,
        parent="",
        parent_hq=None,
        parent_share=None,
    )


def test_own_data_center_without_city_has_empty_city(cat: Catalog) -> None:
    facts = cat.facts_for(loc(provider="self", region="on-prem", country="SG"))
    assert (facts.city, facts.country, facts.continent) == ("", "SG", "Asia")


def test_own_data_center_requires_a_country(cat: Catalog) -> None:
    with pytest.raises(CatalogError) as err:
        cat.facts_for(loc(name="basement", provider="self", region="on-prem"))
    message = str(err.value)
    assert message.startswith("location 'basement': ")
    assert "needs `country:`" in message


def test_own_data_center_rejects_unassigned_country_code(cat: Catalog) -> None:
    # "XX" passes the config's shape check; only the catalog knows it is not a country.
    with pytest.raises(CatalogError, match="location 'here': unknown country code 'XX'"):
        cat.facts_for(loc(provider="self", region="on-prem", country="XX"))


def test_unknown_provider_names_the_location_and_suggests(cat: Catalog) -> None:
    with pytest.raises(CatalogError) as err:
        cat.facts_for(loc(name="x", provider="tencnet", region="ap-singapore"))
    assert str(err.value) == "location 'x': unknown provider 'tencnet'; did you mean 'tencent'?"


def test_unknown_region_names_the_location_and_suggests(cat: Catalog) -> None:
    with pytest.raises(CatalogError, match="location 'here': unknown region 'us-ashburn-2'") as err:
        cat.facts_for(loc(provider="oci", region="us-ashburn-2"))
    assert "did you mean 'us-ashburn-1'" in str(err.value)


def test_config_country_must_agree_with_the_catalog(cat: Catalog) -> None:
    ok = cat.facts_for(loc(provider="aws", region="eu-central-1", country="DE"))
    assert ok.country == "DE"
    with pytest.raises(CatalogError, match="conflicts with the catalog: aws us-east-1 is in US"):
        cat.facts_for(loc(provider="aws", region="us-east-1", country="DE"))


def test_multi_country_region_cannot_be_pinned(cat: Catalog) -> None:
    facts = cat.facts_for(loc(provider="gcp", region="eu"))
    assert facts.country is None
    assert facts.continent == "Europe"
    with pytest.raises(CatalogError, match="spans several countries"):
        cat.facts_for(loc(provider="gcp", region="eu", country="DE"))


def test_config_city_labels_a_region_without_a_published_city(cat: Catalog) -> None:
    facts = cat.facts_for(loc(provider="backblaze", region="us-west-002", city="Sacramento"))
    assert (facts.city, facts.country) == ("Sacramento", "US")
