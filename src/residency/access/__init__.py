"""Access governance: who may act on what (Cedar), and how much covered data (28 CFR 202).

- `Authorizer.authorize(principal, action, resource, context) -> AccessDecision`: Cedar
  policies (defaults reproduce S3 tenant ownership, plus operator `.cedar` files), parsed
  and validated once; evaluation is pure.
- `Ledger.charge(session, principal, obj, now=) -> LedgerDecision`: the bulk-data ledger,
  in the caller's transaction.
"""

from residency.access.actions import S3_OPERATIONS, Action, parse_action
from residency.access.authorizer import AccessDecision, Authorizer, load_authorizer
from residency.access.categories import BulkCategory, BulkRules, load_bulk_rules
from residency.access.entities import (
    BucketRef,
    ObjectRef,
    PrincipalRef,
    RequestContext,
    Resource,
    TenantRef,
)
from residency.access.errors import AccessError, BulkRulesError, PolicyFileError, RequestError
from residency.access.ledger import Ledger, LedgerDecision, Standing, charge
from residency.access.policyfiles import PolicyBundle, PolicyInfo, check_file, load_bundle

__all__ = [
    "S3_OPERATIONS",
    "AccessDecision",
    "AccessError",
    "Action",
    "Authorizer",
    "BucketRef",
    "BulkCategory",
    "BulkRules",
    "BulkRulesError",
    "Ledger",
    "LedgerDecision",
    "ObjectRef",
    "PolicyBundle",
    "PolicyFileError",
    "PolicyInfo",
    "PrincipalRef",
    "RequestContext",
    "RequestError",
    "Resource",
    "Standing",
    "TenantRef",
    "charge",
    "check_file",
    "load_authorizer",
    "load_bulk_rules",
    "load_bundle",
    "parse_action",
]
