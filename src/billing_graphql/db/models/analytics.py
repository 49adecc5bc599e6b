"""The history of every subscription's MRR, kept by ``db.mrr_history`` on each flush."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from billing_graphql.db.models.base import Base, enum_type, owned_by, reference, uuid_pk
from billing_graphql.domain.status import SubscriptionStatus


class SubscriptionMrrRevision(Base):
    """A subscription's state as analytics sees it, valid over [valid_from, valid_to).

    A new revision is written whenever the subscription's MRR, status or plan changes; the
    previous one is closed at the same instant, so one subscription's revisions tile time with
    no gap or overlap, and the open one (``valid_to`` NULL) is its state now. Revisions of one
    instant are ordered by ``seq``: a churn at the instant the open revision began (a
    subscription canceled the moment it started) keeps that revision, closed with no length
    (``valid_to = valid_from``: never in force, still a movement), and opens the next with
    ``seq + 1``.
    """

    __tablename__ = "subscription_mrr_revisions"

    id: Mapped[uuid.UUID] = uuid_pk()
    subscription_id: Mapped[uuid.UUID] = owned_by("subscriptions")
    organization_id: Mapped[uuid.UUID] = owned_by()
    plan_id: Mapped[uuid.UUID] = reference("plans")
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[SubscriptionStatus] = mapped_column(enum_type(SubscriptionStatus, "mrr_revision_status"))
    mrr_minor: Mapped[int] = mapped_column(BigInteger)
    valid_from: Mapped[datetime]
    valid_to: Mapped[datetime | None]
    seq: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))

    __table_args__ = (
        # One open revision per subscription; revisions of one instant told apart by seq.
        Index(
            "uq_subscription_mrr_revisions_open",
            "subscription_id",
            unique=True,
            sqlite_where=text("valid_to IS NULL"),
            postgresql_where=text("valid_to IS NULL"),
        ),
        UniqueConstraint("subscription_id", "valid_from", "seq", name="uq_mrr_revision_start"),
        Index("ix_subscription_mrr_revisions_currency_from", "currency", "valid_from"),
        CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="valid_ordered"),
        CheckConstraint("seq >= 0", name="seq_not_negative"),
        CheckConstraint("mrr_minor >= 0", name="mrr_not_negative"),
        CheckConstraint("mrr_minor = 0 OR status IN ('ACTIVE', 'PAST_DUE')", name="mrr_only_when_counted"),
    )
