"""Usage charges on plans over GraphQL (issue 20): every model written and read back, and
``overageMessagePrice`` as the STANDARD charge on messages (read and write)."""

from __future__ import annotations

from sqlalchemy import select

from billing_graphql.db.models import Metric, PlanCharge

CHARGE = "metric { code } model includedUnits unitAmount { amount currency formatted } packageSize " \
         "tiers { upTo unitAmount { amount } flatAmount { amount } }"
CREATE = f"""mutation($i: CreatePlanInput!) {{ createPlan(input: $i) {{
  plan {{ id version overageMessagePrice {{ amount }} maxMessagesMonth charges {{ {CHARGE} }} }}
  errors {{ code message field }} }} }}"""
UPDATE = f"""mutation($i: UpdatePlanInput!) {{ updatePlan(input: $i) {{
  plan {{ id version overageMessagePrice {{ amount }} maxMessagesMonth charges {{ {CHARGE} }} }}
  errors {{ code message field }} }} }}"""
PLAN = f"""query($id: ID!) {{ plan(id: $id) {{ overageMessagePrice {{ amount }} charges {{ {CHARGE} }} }} }}"""


async def create(api, keys, values):
    data = await api.ok(CREATE, {"i": values}, token=keys.super_admin)
    assert data["createPlan"]["errors"] == [], data
    return data["createPlan"]["plan"]


async def test_every_model_is_written_and_read_back(api, keys):
    plan = await create(api, keys, {
        "name": "Usage", "slug": "usage", "currency": "USD", "basePriceMonthly": "10.00",
        "charges": [
            {"metric": "messages", "model": "STANDARD", "includedUnits": 1000, "unitAmount": "0.0015"},
            {"metric": "api_calls", "model": "PACKAGE", "unitAmount": "7.00", "packageSize": 1000},
            {"metric": "contacts", "model": "GRADUATED", "includedUnits": 100, "tiers": [
                {"upTo": 1000, "unitAmount": "0.10"}, {"upTo": None, "unitAmount": "0.05", "flatAmount": "20.00"}]},
            {"metric": "channels", "model": "VOLUME", "tiers": [
                {"upTo": 5, "unitAmount": "3"}, {"upTo": "5000000000", "unitAmount": "2"},
                {"upTo": None, "unitAmount": "1"}]},
        ]})
    assert plan["version"] == 1
    standard, package, graduated, volume = plan["charges"]
    assert standard == {"metric": {"code": "messages"}, "model": "STANDARD", "includedUnits": "1000",
                        "unitAmount": {"amount": "0.0015", "currency": "USD", "formatted": "$0.00"},
                        "packageSize": None, "tiers": []}
    # A STANDARD messages charge of a fraction of a cent is no whole overageMessagePrice.
    assert plan["overageMessagePrice"] == {"amount": "0.00"}
    assert (package["model"], package["packageSize"], package["unitAmount"]["amount"]) == ("PACKAGE", "1000", "7.00")
    assert graduated["includedUnits"] == "100"
    assert graduated["tiers"] == [
        {"upTo": "1000", "unitAmount": {"amount": "0.10"}, "flatAmount": {"amount": "0.00"}},
        {"upTo": None, "unitAmount": {"amount": "0.05"}, "flatAmount": {"amount": "20.00"}}]
    assert [tier["upTo"] for tier in volume["tiers"]] == ["5", "5000000000", None]
    read = (await api.ok(PLAN, {"id": plan["id"]}, token=keys.owner))["plan"]
    assert read["charges"] == plan["charges"]


async def test_overage_message_price_is_the_standard_charge_on_messages(api, keys, db):
    plan = await create(api, keys, {"name": "Chat", "slug": "chat", "basePriceMonthly": "200000",
                                    "overageMessagePrice": "500", "limits": [{"metric": "messages", "limit": 1000}]})
    assert plan["overageMessagePrice"] == {"amount": "500"}
    (charge,) = plan["charges"]
    assert (charge["metric"], charge["model"], charge["includedUnits"], charge["unitAmount"]["amount"]) == (
        {"code": "messages"}, "STANDARD", "1000", "500")

    # A new messages limit moves the included units; a new price the unit amount; 0 removes it.
    moved = (await api.ok(UPDATE, {"i": {"id": plan["id"], "limits": [{"metric": "messages", "limit": 2000}]}},
                          token=keys.super_admin))["updatePlan"]["plan"]
    assert (moved["charges"][0]["includedUnits"], moved["maxMessagesMonth"], moved["version"]) == ("2000", 2000, 1)
    priced = (await api.ok(UPDATE, {"i": {"id": plan["id"], "overageMessagePrice": "750"}},
                           token=keys.super_admin))["updatePlan"]["plan"]
    assert priced["overageMessagePrice"] == {"amount": "750"}
    assert (priced["charges"][0]["includedUnits"], priced["charges"][0]["unitAmount"]["amount"]) == ("2000", "750")
    removed = (await api.ok(UPDATE, {"i": {"id": plan["id"], "overageMessagePrice": "0"}},
                            token=keys.super_admin))["updatePlan"]["plan"]
    assert (removed["overageMessagePrice"], removed["charges"]) == ({"amount": "0"}, [])
    async with db.read() as session:
        assert (await session.scalars(select(PlanCharge))).all() == []

    # Unlimited messages: the price is kept and read back, every unit included (nothing billed).
    unlimited = await create(api, keys, {"name": "Ent", "slug": "ent", "basePriceMonthly": "900000",
                                         "overageMessagePrice": "100"})
    assert unlimited["overageMessagePrice"] == {"amount": "100"}
    assert unlimited["charges"][0]["includedUnits"] is None

    # Charges replace the whole set; a GRADUATED messages charge reads as no single overage price.
    replaced = (await api.ok(UPDATE, {"i": {"id": unlimited["id"], "charges": [
        {"metric": "messages", "model": "GRADUATED", "tiers": [{"upTo": 10, "unitAmount": "0"},
                                                                {"upTo": None, "unitAmount": "50"}]}]}},
        token=keys.super_admin))["updatePlan"]
    assert replaced["errors"] == []
    assert replaced["plan"]["overageMessagePrice"] == {"amount": "0"}
    assert [charge["model"] for charge in replaced["plan"]["charges"]] == ["GRADUATED"]
    async with db.read() as session:
        rows = (await session.execute(select(Metric.code, PlanCharge.version).join(Metric))).all()
    assert rows == [("messages", 1)]
