"""Facts about where bytes can live: providers, regions, countries, country groups and prices.

`load_catalog()` parses the vendored data once per process; `Catalog` answers the questions the
policy engine, planner and CLI ask (`facts_for` turns a configured location into the
`LocationFacts` a policy decision is made on).
"""

from residency.catalog.catalog import Catalog
from residency.catalog.facts import LocationFacts
from residency.catalog.load import load_catalog, read_catalog
from residency.catalog.model import (
    SELF_PROVIDER,
    CatalogError,
    Country,
    CountryGroup,
    Provider,
    Region,
)

__all__ = [
    "SELF_PROVIDER",
    "Catalog",
    "CatalogError",
    "Country",
    "CountryGroup",
    "LocationFacts",
    "Provider",
    "Region",
    "load_catalog",
    "read_catalog",
]
