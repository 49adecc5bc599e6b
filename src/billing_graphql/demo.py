"""Demo data: a USD pricing table (Free/Pro/Team/Enterprise), an IDR catalog, a demo organization
and one API key per role."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from billing_graphql.db.engine import Database
from billing_graphql.db.models import Metric, Organization, Plan, PlanFeature, PlanLimit
from billing_graphql.domain.money import parse_major
from billing_graphql.domain.roles import Role
from billing_graphql.services.api_keys import create_api_key
from billing_graphql.services.organizations import create_organization

DEMO_ORGANIZATION_EXTERNAL_ID = "demo"


@dataclass(frozen=True)
class DemoPlan:
    slug: str
    name: str
    currency: str
    monthly: str
    per_agent: str
    overage_message: str
    included_agents: int
    sort_order: int
    limits: dict[str, int | None]
    features: dict[str, bool] = field(default_factory=dict)
    trial_days: int = 14


PLANS = [
    DemoPlan("free", "Free", "USD", "0", "0", "0", 1, 0,
             {"agents": 1, "contacts": 100, "messages": 1000, "channels": 1, "ai_agents": 0, "integrations": 1},
             {"aiAgent": False, "apiAccess": False, "dedicatedSupport": False}, trial_days=0),
    DemoPlan("pro", "Pro", "USD", "29.00", "9.00", "0.01", 3, 1,
             {"agents": 10, "contacts": 5000, "messages": 50000, "channels": 5, "ai_agents": 1, "integrations": 5},
             {"aiAgent": True, "apiAccess": True, "dedicatedSupport": False}),
    DemoPlan("team", "Team", "USD", "99.00", "7.00", "0.01", 10, 2,
             {"agents": 50, "contacts": 50000, "messages": 500000, "channels": 20, "ai_agents": 5, "integrations": 20},
             {"aiAgent": True, "apiAccess": True, "dedicatedSupport": False}),
    DemoPlan("enterprise", "Enterprise", "USD", "299.00", "5.00", "0.01", 25, 3,
             {"agents": None, "contacts": None, "messages": None, "channels": None, "ai_agents": None,
              "integrations": None},
             {"aiAgent": True, "apiAccess": True, "dedicatedSupport": True}),
    DemoPlan("starter-idr", "Starter", "IDR", "299000", "50000", "150", 2, 10,
             {"agents": 3, "contacts": 1000, "messages": 10000, "channels": 2, "ai_agents": 0, "integrations": 2},
             {"aiAgent": False, "apiAccess": False, "dedicatedSupport": False}),
    DemoPlan("growth-idr", "Growth", "IDR", "599000", "45000", "120", 5, 11,
             {"agents": 10, "contacts": 10000, "messages": 100000, "channels": 5, "ai_agents": 2, "integrations": 10},
             {"aiAgent": True, "apiAccess": True, "dedicatedSupport": False}),
    DemoPlan("business-idr", "Business", "IDR", "1499000", "40000", "100", 15, 12,
             {"agents": None, "contacts": 100000, "messages": 1000000, "channels": None, "ai_agents": 10,
              "integrations": None},
             {"aiAgent": True, "apiAccess": True, "dedicatedSupport": True}),
]

async def _seed_catalog(db: Database, now: datetime) -> int:
    created = 0
    async with db.write() as session:
        metrics = {m.code: m.id for m in (await session.scalars(select(Metric))).all()}
        existing = set((await session.scalars(select(Plan.slug))).all())
        for spec in PLANS:
            if spec.slug in existing:
                continue
            monthly = parse_major(spec.monthly, spec.currency)
            plan = Plan(
                id=uuid.uuid4(),
                name=spec.name,
                slug=spec.slug,
                currency=spec.currency,
                base_price_monthly=monthly,
                base_price_annual=monthly * 10,
                per_agent_price=parse_major(spec.per_agent, spec.currency),
                overage_message_price=parse_major(spec.overage_message, spec.currency),
                included_agents=spec.included_agents,
                trial_days=spec.trial_days,
                is_active=True,
                sort_order=spec.sort_order,
                created_at=now,
                updated_at=now,
            )
            plan.limits = [
                PlanLimit(metric_id=metrics[code], limit_value=value) for code, value in spec.limits.items()
            ]
            plan.features = [PlanFeature(key=key, enabled=enabled) for key, enabled in spec.features.items()]
            session.add(plan)
            created += 1
    return created


async def seed_demo(db: Database, now: datetime) -> dict[Role, str]:
    """Create the demo catalog and organization if missing, and fresh demo keys (returned)."""
    await _seed_catalog(db, now)
    async with db.read() as session:
        organization_id = await session.scalar(
            select(Organization.id).where(Organization.external_id == DEMO_ORGANIZATION_EXTERNAL_ID)
        )
    if organization_id is None:
        organization = await create_organization(
            db, None, name="Demo Company", external_id=DEMO_ORGANIZATION_EXTERNAL_ID, now=now
        )
        organization_id = organization.id
    keys: dict[Role, str] = {}
    for role in Role:
        _, plain = await create_api_key(
            db,
            None,
            role=role,
            organization_id=organization_id if role.needs_organization else None,
            label=f"demo {role.value.lower()}",
            now=now,
        )
        keys[role] = plain
    return keys
