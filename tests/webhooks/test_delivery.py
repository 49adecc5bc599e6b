"""The delivery worker against a real receiver on 127.0.0.1 that verifies every request with
``standardwebhooks.Webhook(secret).verify``: signing, retries on the schedule, 410, timeouts,
crash between claim and send, and the secret rotation."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from billing_graphql.db.models import DeliveryStatus, OutboxEvent, WebhookDelivery, WebhookEndpoint
from billing_graphql.jobs.webhook_delivery import WebhookWorker
from billing_graphql.services.live.hub import replay
from billing_graphql.services.webhooks import deliveries, endpoints
from billing_graphql.services.webhooks.dispatch import fan_out
from billing_graphql.services.webhooks.sender import Sender
from tests.helpers import T0, gid
from tests.webhooks.conftest import STAFF, add_endpoint, emit
from tests.webhooks.receiver import running_receiver


def worker(db, clock, **options) -> WebhookWorker:
    return WebhookWorker(db, production=False, now=clock, rand=lambda: 0.5, poll_seconds=0.01, **options)


async def rows(db, model, *where):
    async with db.read() as session:
        return (await session.scalars(select(model).where(*where))).all()


async def test_each_event_is_delivered_once_signed_and_identical_on_redelivery(db, organization, receiver, clock):
    endpoint, secret = await add_endpoint(db, receiver.url, organization_id=organization.id)
    receiver.secrets = [secret]
    assert secret.startswith("whsec_")
    await emit(db, organization.id, "invoice.paid", count=3, amount_paid=299000)
    attempts = await worker(db, clock).run_until_idle()
    assert attempts == 3 and receiver.rejected == []
    assert sorted(receiver.counts().values()) == [1, 1, 1]
    first = receiver.received[0]
    assert set(first.payload) == {"type", "timestamp", "data"}
    assert first.payload["type"] == "invoice.paid" and first.payload["data"]["amount_paid"] == 299000
    assert first.payload["timestamp"] == "2026-01-15T09:00:00Z"
    delivered = await rows(db, WebhookDelivery)
    assert {(row.status, row.attempts, row.last_status_code) for row in delivered} == {
        (DeliveryStatus.DELIVERED, 1, 200)}
    assert all(row.delivered_at == clock.at for row in delivered)

    # A redelivery sends the same webhook-id and the same bytes.
    again = next(row for row in delivered if f"msg_{row.event_id.hex}" == first.webhook_id)
    clock.advance(hours=1)
    await deliveries.redeliver(db, STAFF, again.id, now=clock.at)
    assert await worker(db, clock).run_until_idle() == 1
    assert receiver.received[-1].webhook_id == first.webhook_id and receiver.received[-1].body == first.body
    (row,) = await rows(db, WebhookDelivery, WebhookDelivery.id == again.id)
    assert row.status is DeliveryStatus.DELIVERED and row.attempts == 2


async def test_500_500_200_is_delivered_on_the_third_attempt_at_the_scheduled_times(db, organization, clock):
    with running_receiver(statuses=[500, 500]) as receiver:
        endpoint, receiver.secrets = (lambda pair: (pair[0], [pair[1]]))(await add_endpoint(db, receiver.url))
        await emit(db, organization.id)
        work = worker(db, clock)
        assert await work.run_once() == 1
        (row,) = await rows(db, WebhookDelivery)
        assert (row.status, row.attempts, row.last_status_code) == (DeliveryStatus.PENDING, 1, 500)
        assert row.next_attempt_at == T0 + timedelta(seconds=5)
        assert '"status": 500' in row.last_response_body

        clock.advance(seconds=4)
        assert await work.run_once() == 0  # not due yet
        clock.advance(seconds=1)
        assert await work.run_once() == 1
        (row,) = await rows(db, WebhookDelivery)
        assert row.attempts == 2 and row.next_attempt_at == T0 + timedelta(seconds=5, minutes=5)

        clock.advance(minutes=5)
        assert await work.run_once() == 1
        (row,) = await rows(db, WebhookDelivery)
        assert (row.status, row.attempts, row.last_status_code) == (DeliveryStatus.DELIVERED, 3, 200)
        assert row.delivered_at == T0 + timedelta(seconds=5, minutes=5)
        assert len(receiver.received) == 1


async def test_jitter_moves_a_retry_by_at_most_ten_percent(db, organization, clock):
    with running_receiver(statuses=[503]) as receiver:
        _, secret = await add_endpoint(db, receiver.url)
        receiver.secrets = [secret]
        await emit(db, organization.id)
        await WebhookWorker(db, production=False, now=clock, rand=lambda: 1.0).run_once()
        (row,) = await rows(db, WebhookDelivery)
        assert row.next_attempt_at == T0 + timedelta(seconds=5.5)


async def test_every_attempt_failing_ends_failed_after_the_eighth(db, organization, clock):
    with running_receiver(statuses=[500] * 20) as receiver:
        _, secret = await add_endpoint(db, receiver.url)
        receiver.secrets = [secret]
        await emit(db, organization.id)
        work = worker(db, clock)
        for _ in range(8):
            assert await work.run_once() == 1
            clock.advance(hours=11)
        (row,) = await rows(db, WebhookDelivery)
        assert (row.status, row.attempts, row.next_attempt_at) == (DeliveryStatus.FAILED, 8, None)
        assert await work.run_once() == 0


async def test_410_fails_the_delivery_and_disables_the_endpoint_with_an_event(db, organization, clock):
    with running_receiver(statuses=[410]) as receiver:
        endpoint, secret = await add_endpoint(db, receiver.url, organization_id=organization.id)
        receiver.secrets = [secret]
        await emit(db, organization.id, count=2)
        await worker(db, clock, batch_size=1).run_once()
        (gone,) = await rows(db, WebhookEndpoint)
        assert gone.enabled is False and "410" in gone.disabled_reason
        statuses = sorted(row.status.value for row in await rows(db, WebhookDelivery))
        assert statuses == ["FAILED", "PENDING"]  # the second one waits for the endpoint to come back
        assert await worker(db, clock).run_until_idle() == 0
        (event,) = await rows(db, OutboxEvent, OutboxEvent.event_type == "webhook_endpoint.disabled")
        assert event.organization_id == organization.id and event.payload["object"]["id"] == gid("WebhookEndpoint", endpoint.id)
        assert event.payload["object"]["enabled"] is False and "410" in event.payload["reason"]


async def test_a_timeout_counts_as_a_failure(db, organization, clock):
    with running_receiver(delay=1.0) as receiver:
        _, secret = await add_endpoint(db, receiver.url)
        receiver.secrets = [secret]
        await emit(db, organization.id)
        sender = Sender(production=False, timeout=0.2)
        try:
            assert await worker(db, clock, sender=sender).run_once() == 1
        finally:
            await sender.close()
        (row,) = await rows(db, WebhookDelivery)
        assert (row.status, row.attempts, row.last_status_code) == (DeliveryStatus.PENDING, 1, None)
        assert row.last_error == "Timed out." and row.next_attempt_at == T0 + timedelta(seconds=5)


class Killed(Exception):
    pass


async def test_a_worker_killed_between_claim_and_send_loses_nothing_and_sends_nothing_twice(
    db, organization, receiver, clock
):
    _, secret = await add_endpoint(db, receiver.url)
    _, second_secret = await add_endpoint(db, receiver.url)
    receiver.secrets = [secret, second_secret]
    await emit(db, organization.id, count=5)

    async def die(claims):
        raise Killed(len(claims))

    with pytest.raises(Killed):
        await worker(db, clock, batch_size=4, on_claimed=die).run_once()
    assert receiver.received == []
    # Restarted at once: the claimed deliveries are still leased, the others go out.
    assert await worker(db, clock).run_until_idle() == 6
    clock.advance(seconds=61)  # the dead worker's lease has run out
    assert await worker(db, clock).run_until_idle() == 4
    assert await worker(db, clock).run_until_idle() == 0
    counts = receiver.counts()
    assert len(counts) == 5 and set(counts.values()) == {2}  # each event once per endpoint
    assert {row.status for row in await rows(db, WebhookDelivery)} == {DeliveryStatus.DELIVERED}


async def test_the_old_secret_keeps_signing_for_24_hours_after_a_rotation(db, organization, clock):
    with running_receiver() as old_only, running_receiver() as new_only:
        endpoint, old = await add_endpoint(db, old_only.url)
        _, new = await endpoints.rotate_secret(db, STAFF, endpoint.id, now=clock.at)
        assert new != old and new.startswith("whsec_")
        new_endpoint, _ = await add_endpoint(db, new_only.url)
        async with db.write() as session:  # the second receiver shares the rotated secrets
            row = await session.get(WebhookEndpoint, new_endpoint.id)
            row.secret, row.previous_secret, row.previous_secret_expires_at = new, old, clock.at + timedelta(hours=24)
        old_only.secrets, new_only.secrets = [old], [new]
        await emit(db, organization.id)
        await worker(db, clock).run_until_idle()
        assert len(old_only.received) == 1 and len(new_only.received) == 1
        assert len(old_only.received[0].headers["webhook-signature"].split(" ")) == 2

        clock.advance(hours=24, seconds=1)
        await emit(db, organization.id, now=clock.at)
        await worker(db, clock).run_until_idle()
        assert len(new_only.received) == 2
        assert len(old_only.received) == 1 and old_only.rejected  # the old secret no longer signs


async def test_five_days_of_failures_disable_the_endpoint(db, organization, clock):
    with running_receiver(statuses=[500] * 100) as receiver:
        endpoint, secret = await add_endpoint(db, receiver.url, organization_id=organization.id)
        receiver.secrets = [secret]
        work = worker(db, clock)
        for day in range(6):
            await emit(db, organization.id, now=clock.at)
            await work.run_until_idle()
            (row,) = await rows(db, WebhookEndpoint)
            assert row.enabled is (day < 5), day
            clock.advance(days=1)
        assert row.failing_since == T0 and "5 days" in row.disabled_reason


async def test_a_success_resets_the_failure_streak(db, organization, clock):
    with running_receiver(statuses=[500]) as receiver:
        _, secret = await add_endpoint(db, receiver.url)
        receiver.secrets = [secret]
        await emit(db, organization.id)
        work = worker(db, clock)
        await work.run_once()
        (row,) = await rows(db, WebhookEndpoint)
        assert row.failing_since == T0
        clock.advance(seconds=5)
        await work.run_once()
        (row,) = await rows(db, WebhookEndpoint)
        assert row.failing_since is None


async def test_events_go_to_matching_endpoints_of_their_organization_and_platform_wide_ones(db, clock):
    from tests.factories import make_organization

    acme, globex = await make_organization(db, "Acme"), await make_organization(db, "Globex")
    with running_receiver() as mine, running_receiver() as platform, running_receiver() as invoices_only:
        _, mine_secret = await add_endpoint(db, mine.url, organization_id=acme.id)
        _, platform_secret = await add_endpoint(db, platform.url)
        _, filtered_secret = await add_endpoint(db, invoices_only.url, organization_id=acme.id, events=["invoice.*"])
        mine.secrets, platform.secrets, invoices_only.secrets = [mine_secret], [platform_secret], [filtered_secret]
        await emit(db, acme.id, "invoice.paid")
        await emit(db, acme.id, "subscription.created")
        await emit(db, globex.id, "invoice.paid")
        await emit(db, None, "gateway.sandbox.payment.captured")  # internal: never sent
        await worker(db, clock).run_until_idle()
        assert sorted(mine.types()) == ["invoice.paid", "subscription.created"]
        assert sorted(platform.types()) == ["invoice.paid", "invoice.paid", "subscription.created"]
        assert invoices_only.types() == ["invoice.paid"]
        async with db.read() as session:
            assert await session.scalar(select(OutboxEvent).where(OutboxEvent.dispatched_at.is_(None))) is None


async def test_production_mode_refuses_a_private_address_at_delivery(db, organization, receiver, clock):
    # Created outside production mode (or its name pointed elsewhere then): checked again when sent.
    endpoint, secret = await add_endpoint(db, receiver.url.replace("http://127.0.0.1", "https://localhost"))
    receiver.secrets = [secret]
    await emit(db, organization.id)
    await WebhookWorker(db, production=True, now=clock, rand=lambda: 0.5).run_once()
    (row,) = await rows(db, WebhookDelivery)
    assert row.last_status_code is None and "'localhost' resolves to" in row.last_error
    assert receiver.received == [] and receiver.rejected == []


async def test_send_test_webhook_reaches_only_its_endpoint(db, organization, clock):
    with running_receiver() as one, running_receiver() as other:
        endpoint, one_secret = await add_endpoint(db, one.url)
        _, other_secret = await add_endpoint(db, other.url)
        one.secrets, other.secrets = [one_secret], [other_secret]
        await deliveries.send_test(db, STAFF, endpoint.id, now=clock.at)
        await worker(db, clock).run_until_idle()
        assert one.types() == ["webhook.test"] and other.received == []
        assert json.loads(one.received[0].body)["data"]["object"]["id"] == gid("WebhookEndpoint", endpoint.id)


async def test_production_sends_to_the_checked_address_keeping_the_name_for_tls_and_host():
    """No network: httpx's mock transport shows where the request would go."""
    import httpx

    from billing_graphql.services.webhooks.sender import Message

    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    async def resolver(host, port):
        return {"hooks.example": ["93.184.216.34"], "evil.example": ["10.0.0.1"]}[host]

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        sender = Sender(production=True, client=client, resolver=resolver)
        good = await sender.send(Message("https://hooks.example:8443/in?x=1", "msg_1", "{}", ("whsec_" + "A" * 43,)))
        bad = await sender.send(Message("https://evil.example/in", "msg_2", "{}", ("whsec_" + "A" * 43,)))
    assert (good.status_code, bad.status_code) == (204, None) and "10.0.0.1" in bad.error
    (request,) = seen
    assert str(request.url) == "https://93.184.216.34:8443/in?x=1"
    assert request.headers["host"] == "hooks.example:8443"
    assert request.extensions["sni_hostname"] == "hooks.example"
    assert request.headers["webhook-id"] == "msg_1" and request.headers["webhook-signature"].startswith("v1,")


async def test_events_of_one_transaction_are_read_in_the_order_they_were_written(db, organization, clock):
    """One transaction's events share ``created_at``: their ids alone must keep the order, for the
    dispatcher and for a live replay (a webhook consumer sees ``invoice.created`` before ``invoice.paid``)."""
    await add_endpoint(db, "http://127.0.0.1:9/", organization_id=organization.id)
    while await fan_out(db, clock.at):  # what adding the endpoint emitted
        pass
    await emit(db, organization.id, "invoice.updated", count=40)
    async with db.read() as session:
        written = (await session.scalars(select(OutboxEvent).where(OutboxEvent.dispatched_at.is_(None))
                                         .order_by(OutboxEvent.created_at, OutboxEvent.id))).all()
    assert [event.payload["index"] for event in written] == list(range(40))
    replayed = await replay(db, organization.id, written[0].id, now=clock.at)
    assert [event.id for event in replayed] == [event.id for event in written[1:]]

    assert await fan_out(db, clock.at, limit=15) == 15  # the first 15 written, not any 15
    async with db.read() as session:
        claimed = (await session.scalars(
            select(OutboxEvent).join(WebhookDelivery, WebhookDelivery.event_id == OutboxEvent.id)
            .where(OutboxEvent.event_type == "invoice.updated"))).all()
    assert sorted(event.payload["index"] for event in claimed) == list(range(15))
