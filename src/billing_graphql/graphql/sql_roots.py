"""The root lists and connections the compiled path's SQL tier answers (``graphql.compiled.sql``).

Each names the function its resolver reads its rows from (the statement and page, one definition for
both paths). The fields below them need nothing here: their SQL forms come from ``graphql.columns``.

Adding a root: give its resolver a ``..._query(context, **arguments) -> RootQuery | None`` function that
it reads its rows from, and add it here (``connection=False`` for a plain list).

``FIELDS``: connections below the root, by (object type, field): ``query(context, parent, **arguments)`` is
the resolver's own statement for one parent object (None: the field is null for this caller). Where the
document is on its Python plan, such a field is answered by one statement per parent, as its resolver reads
one page per parent. A single object (``one=True``, e.g. ``viewer.organization``) is answered by one statement
with the connections of ``FIELDS`` selected below it (``compiled.sql.SqlObjectPlan``).

A computed object (``usage``, ``entitlements``, ``planLimits``, ``analytics``) has no row of its own: its
``..._query`` is a coroutine that reads first what the domain's Python rules need
(``services.usage.reading.usage_basis``: the live subscription, its plan, the billing month in force), and its row
is those values, bound (``usage.types``' ``usage_row``, ...); the database writes the lists below from them. What
only some of its fields need it reads only when they are selected (``SqlRoot.selection``: ``usage``'s and
``entitlements``' amounts, priced in Python by ``services.usage.amounts`` and bound as the row's ``amounts``). Lists
computed in Python are bound beside the row as relations of values that its lists read (``columns.values_relation``:
``analytics``' months, statuses and plans). Its resolver keeps the service's answer, and the differential tests hold
the two to the same bytes. A computed page (``usageSnapshots``) is the same per row: its first read finds the page's
organizations and each one's values, and its rows are bound as a relation of values (``columns.values_rows``,
``RootQuery.has_next``). A case its SQL form does not cover raises ``columns.GenericPathAnswers`` (the generic path
answers). Where the first read leaves nothing more to read (``coupon``: a code refused without its coupon), the
``..._query`` gives the resolver's own object (``columns.PythonAnswer``), which the Python plan completes: no second
statement. A field with no SQL form whose value the first reads and Python rules find (``subscription``'s
``upcomingInvoice``: the renewal's inputs read in one statement, priced by the billing run's code) is named in
``SqlRoot.python``: where it is selected, the ``..._query`` always gives the ``PythonAnswer``, its other fields
answered by their resolvers.
"""

from __future__ import annotations

from billing_graphql.graphql.analytics.schema import analytics_query
from billing_graphql.graphql.billing.invoices import invoices_query
from billing_graphql.graphql.catalog.addons import addons_query
from billing_graphql.graphql.catalog.coupons import coupon_check_query, coupons_query
from billing_graphql.graphql.catalog.metrics import metrics_query
from billing_graphql.graphql.catalog.plans import plan_query, plans_query
from billing_graphql.graphql.compiled.sql import SqlRoot
from billing_graphql.graphql.payments.payment_methods import payment_methods_query
from billing_graphql.graphql.platform.organizations import api_keys_query, organization_query, organizations_query
from billing_graphql.graphql.platform.types import (
    credit_balance_transactions_query,
    credit_notes_query,
    viewer_organization_query,
)
from billing_graphql.graphql.subscriptions.schema import UPCOMING, subscription_query, subscriptions_query
from billing_graphql.graphql.usage.schema import (
    entitlements_query, plan_limits_query, usage_query, usage_snapshots_query,
)
from billing_graphql.graphql.webhooks.schema import webhook_deliveries_query, webhook_endpoints_query

ROOTS: dict[str, SqlRoot] = {
    "invoices": SqlRoot(invoices_query),
    "plans": SqlRoot(plans_query, connection=False),
    "plan": SqlRoot(plan_query, connection=False, one=True),
    "addons": SqlRoot(addons_query, connection=False),
    "coupons": SqlRoot(coupons_query),
    "coupon": SqlRoot(coupon_check_query, connection=False, one=True),
    "metrics": SqlRoot(metrics_query, connection=False),
    "paymentMethods": SqlRoot(payment_methods_query, connection=False),
    "webhookEndpoints": SqlRoot(webhook_endpoints_query, connection=False),
    "webhookDeliveries": SqlRoot(webhook_deliveries_query),
    "organizations": SqlRoot(organizations_query),
    "organization": SqlRoot(organization_query, connection=False, one=True),
    "apiKeys": SqlRoot(api_keys_query, connection=False),
    "subscriptions": SqlRoot(subscriptions_query),
    "subscription": SqlRoot(subscription_query, connection=False, one=True, selection=True,
                            python=frozenset({UPCOMING})),
    "entitlements": SqlRoot(entitlements_query, connection=False, one=True, selection=True),
    "usage": SqlRoot(usage_query, connection=False, one=True, selection=True),
    "planLimits": SqlRoot(plan_limits_query, connection=False, one=True),
    "usageSnapshots": SqlRoot(usage_snapshots_query, selection=True),
    "analytics": SqlRoot(analytics_query, connection=False, one=True),
}

FIELDS: dict[tuple[str, str], SqlRoot] = {
    ("Viewer", "organization"): SqlRoot(viewer_organization_query, connection=False, nested=True, one=True),
    ("Organization", "creditNotes"): SqlRoot(credit_notes_query, nested=True),
    ("Organization", "creditBalanceTransactions"): SqlRoot(credit_balance_transactions_query, nested=True),
}
