"""Schemathesis hooks for tests/fuzz/run_schemathesis.sh: strategies for our custom scalars.

``Decimal`` is mostly a valid amount string, sometimes any text (to fuzz its parser, big
amounts included); ``DateTime`` is mostly an aware ISO-8601 instant, sometimes any text.
"""

from datetime import UTC

import schemathesis
from hypothesis import strategies as st
from schemathesis.graphql import nodes

amounts = st.from_regex(r"\A-?[0-9]{1,25}(\.[0-9]{1,4})?\Z")
instants = st.datetimes(timezones=st.just(UTC)).map(lambda moment: moment.isoformat())

schemathesis.graphql.scalar("Decimal", st.one_of(amounts, amounts, st.text(max_size=30)).map(nodes.String))
schemathesis.graphql.scalar("DateTime", st.one_of(instants, instants, st.text(max_size=30)).map(nodes.String))
schemathesis.graphql.scalar("BigInt", st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(lambda number: nodes.Int(number)),
    st.from_regex(r"\A-?[0-9]{1,45}\Z").map(nodes.String),
    st.text(max_size=30).map(nodes.String),
))
