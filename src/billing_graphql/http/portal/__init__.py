"""The billing portal (``/portal/{token}``): a small server-rendered app of its own.

- ``pages``: one GET handler per page (overview, plan, cards, invoices, details, cancel, PDFs);
- ``actions``: one POST handler per action, each calling the service its GraphQL mutation calls;
- ``views``: one view model per page; ``templates/``: their Jinja2 templates;
- ``i18n`` and ``locale/``: English and Indonesian (gettext catalogs, Babel formats);
- ``forms``: the shared input rules, CSRF and origin checks; ``messages``: notices and errors as sentences;
- ``live`` and ``static/usage-live.js``: the usage bars kept live over WebSocket where JavaScript is on;
- ``common``: opening the link, the language, rendering and the security headers.

Services: ``services.portal`` (links, the pages' reads, cards).
"""

from __future__ import annotations


def portal_routes() -> list:
    from billing_graphql.http.portal.actions import ACTIONS
    from billing_graphql.http.portal.live import usage_script
    from billing_graphql.http.portal.pages import PAGES

    return [*PAGES, *ACTIONS, usage_script]
