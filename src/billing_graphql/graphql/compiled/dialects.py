"""The SQL dialects of the compiled path's SQL plans: how each writes JSON text and formats leaf values.

The SQL tier's statement gives the answer's JSON as text, byte for byte as the response prints it (orjson:
no spaces, keys in the document's order, the same string escapes), so that the server passes it on without
parsing it. Objects and lists are concatenated text (``'{"id":' || ... || '}'``, ``string_agg`` /
``group_concat``), not ``json_build_object`` (PostgreSQL prints ``{"a" : 1}``); strings are quoted by the
database (``to_json`` / ``json_quote``, whose escapes are orjson's); every leaf is formatted in SQL as the
GraphQL type serialises it: Money's ``amount`` and ``formatted`` (derived at import from ``domain.language``'s
``format_money``, one branch per currency of ``domain.money.EXPONENTS``; ``Money.exact``'s of an exact decimal
of minor units by exact numeric arithmetic on PostgreSQL, by ``Money.exact`` itself on SQLite), times, decimals,
global ids, enums; lists of objects from a JSON column (``json_elements``, ``json_member``).

PostgreSQL formats in SQL expressions; SQLite in SQL where its text storage allows and otherwise in
functions registered on its connections that call the very Python the GraphQL types use."""

from __future__ import annotations

import uuid
import weakref
from base64 import b64encode
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import Integer, bindparam, func, literal_column, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from strawberry import relay

from billing_graphql.domain.language import format_amount, format_money
from billing_graphql.domain.money import EXPONENTS
from billing_graphql.domain.proration import round_half_up
from billing_graphql.domain.usage import LimitUse
from billing_graphql.graphql.columns import PLACE
from billing_graphql.graphql.common import CURSOR_PREFIX, Money
from billing_graphql.graphql.scalars import _serialize_decimal


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _money_prefixes() -> dict[str, str]:
    """What ``format_money`` writes before the number, per currency (``$``, ``Rp ``, ``KWD ``)."""
    prefixes = {}
    for currency in EXPONENTS:
        prefix = format_money(0, currency)[: -len(format_amount(0, currency))]
        if any(character in prefix for character in "\"\\'") or any(ord(character) < 32 for character in prefix):
            raise ValueError(f"{currency}'s symbol {prefix!r} needs quoting in JSON")  # none does
        prefixes[currency] = prefix
    return prefixes


MONEY_PREFIXES = _money_prefixes()
MONEY_FIELDS = {"amount", "currency", "formatted"}
ROW, POSITION = "i", "bgq_position"  # the alias of a root field's rows; their place in the resolver's order
PAGE, PAGE_KEY = "bgq_page", "bgq_key"  # SQLite: the subquery of a page's keys
BY_PLACES: dict[int, tuple[str, ...]] = {
    places: tuple(code for code, exponent in EXPONENTS.items() if exponent == places) for places in set(EXPONENTS.values())}


class Postgres:
    name = "postgresql"

    # -- JSON text --------------------------------------------------------------------------------

    @staticmethod
    def object_text(pairs: list[tuple[str, str]]) -> str:
        """The JSON object of (key, JSON text expression) pairs, in order (keys are GraphQL names)."""
        parts, head = [], "{"
        for key, value in pairs:
            parts.append(_literal(f'{head}"{key}":'))
            parts.append(value)
            head = ","
        parts.append("'}'")
        return "(" + " || ".join(parts) + ")"

    @staticmethod
    def list_text(item: str, source: str, order_by: str) -> str:
        """The JSON array of the JSON text ``item`` over the rows of ``source``, in ``order_by``."""
        return f"('[' || coalesce((SELECT string_agg({item}, ',' ORDER BY {order_by}) FROM {source}), '') || ']')"

    @staticmethod
    def one_text(item: str, source: str) -> str:
        """The JSON text ``item`` of the one row of ``source`` (SQL NULL: none)."""
        return f"(SELECT {item} FROM {source})"

    @staticmethod
    def quoted(expression: str) -> str:
        """A string as a JSON string, escaped."""
        return f"to_json(({expression})::text)::text"

    @staticmethod
    def bare(expression: str) -> str:
        """A string that needs no escaping (digits, ISO times, base64, enum names) as a JSON string."""
        return f"('\"' || ({expression})::text || '\"')"

    @staticmethod
    def number(expression: str) -> str:
        return f"(({expression})::text)"

    @staticmethod
    def boolean_text(expression: str) -> str:
        return f"(CASE WHEN {expression} THEN 'true' WHEN NOT {expression} THEN 'false' END)"

    @staticmethod
    def string_list(expression: str) -> str:
        """A JSON array of strings (a JSON column) as the response prints it."""
        return (f"(SELECT '[' || coalesce(string_agg(to_json(bgq_e)::text, ',' ORDER BY bgq_n), '') || ']' "
                f"FROM json_array_elements_text({expression}) WITH ORDINALITY AS bgq_t(bgq_e, bgq_n))")

    @staticmethod
    def json_elements(column: str, alias: str) -> tuple[str, str]:
        """The elements of the JSON array ``column`` (none when it is null) as the rows ``alias``, and their order."""
        return (f"json_array_elements(({column})::json) WITH ORDINALITY AS {alias}(bgq_value, bgq_n)",
                f"{alias}.bgq_n")

    @staticmethod
    def json_member(element: str, key: str) -> str:
        """The member ``key`` of the JSON object ``element`` (a ``json_elements`` alias) as text; NULL for a JSON null
        or a missing member."""
        return f"({element}.bgq_value ->> {_literal(key)})"

    # -- leaf values --------------------------------------------------------------------------------

    @staticmethod
    def boolean(column: str) -> str:
        return column

    @staticmethod
    def json_value(column: str) -> str:
        """A JSON column's value, as JSON."""
        return f"({column})::json"

    @staticmethod
    def uuid_text(column: str) -> str:
        return f"({column})::text"

    @staticmethod
    def json_integer(json_text: str, key: str) -> str:
        """The integer under the text ``key`` of a JSON object given as text (NULL: no such key, or no object)."""
        return f"((({json_text})::json ->> ({key}))::bigint)"

    @staticmethod
    def to_text(expression: str) -> str:
        return f"({expression})::text"

    @staticmethod
    def global_id(type_name: str, column: str) -> str:
        return f"replace(encode(convert_to('{type_name}:' || ({column})::text, 'UTF8'), 'base64'), E'\\n', '')"

    @staticmethod
    def cursor(position: str) -> str:
        """``common.cursor_at(position)``."""
        return f"encode(convert_to('{CURSOR_PREFIX}:' || ({position})::text, 'UTF8'), 'base64')"

    @staticmethod
    def datetime(column: str) -> str:
        """``isoformat()`` in UTC with ``Z``: microseconds when there are any. One ``to_char`` with them, whose
        ``.000000Z`` (the only place it can occur) is then cut: a page has ~10 times a row."""
        return (f"replace(to_char((({column}) AT TIME ZONE 'UTC'), 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
                "'.000000Z', 'Z')")

    @staticmethod
    def decimal(column: str) -> str:
        return f"(({column})::numeric)::text"

    @staticmethod
    def rounded(column: str) -> str:
        return f"round(({column})::numeric)::bigint"  # numeric round(): halves away from zero

    @staticmethod
    def greatest(first: str, second: str) -> str:
        return f"greatest({first}, {second})"

    @staticmethod
    def percent(used: str, limit: str) -> str:
        """``LimitUse.percent_used`` as its text (two decimals, halves up; NULL without a limit): exact numeric
        arithmetic, the percentage in hundredths rounded as ``floor((2 * 10000 * used + limit) / (2 * limit))``."""
        return (f"CASE WHEN ({limit}) IS NULL THEN NULL WHEN ({limit}) = 0 THEN CASE WHEN ({used}) = 0 THEN '0.00' "
                f"ELSE '100.00' END ELSE (div(({used})::numeric * 20000 + ({limit}), 2 * ({limit})::numeric) * 0.01)::text "
                "END")

    def _by_places(self, currency: str, of_places: Callable[[int], str]) -> str:
        branches = " ".join(f"WHEN {currency} IN ({', '.join(_literal(code) for code in codes)}) THEN {of_places(places)}"
                            for places, codes in sorted(BY_PLACES.items()))
        return f"CASE {branches} END"

    def money_amount(self, minor: str, currency: str) -> str:
        """``Money.amount`` as the Decimal scalar prints it: exactly the currency's places."""
        return self._by_places(currency, lambda places: (
            f"(({minor})::bigint)::text" if places == 0 else f"((({minor})::bigint) * 0.{'0' * (places - 1)}1)::text"))

    def _grouped(self, whole: str) -> str:
        return f"to_char({whole}, 'FM999,999,999,999,999,999,990')"

    def _fraction(self, magnitude: str, places: int) -> str:
        return f"lpad(({magnitude} % {10 ** places})::text, {places}, '0')"

    @staticmethod
    def integer(expression: str) -> str:
        return f"(({expression})::bigint)"

    def money_formatted(self, minor: str, currency: str) -> str:
        """``Money.formatted`` (``format_money`` in English): sign, symbol, grouped digits, fraction."""
        magnitude = f"abs({self.integer(minor)})"
        symbol = "CASE " + " ".join(f"WHEN {currency} = {_literal(code)} THEN {_literal(prefix)}"
                                    for code, prefix in MONEY_PREFIXES.items()) + " END"
        number = self._by_places(currency, lambda places: (
            self._grouped(magnitude) if places == 0 else
            f"{self._grouped(f'({magnitude} / {10 ** places})')} || '.' || {self._fraction(magnitude, places)}"))
        return f"(CASE WHEN ({minor}) < 0 THEN '-' ELSE '' END || {symbol} || {number})"

    def money_string(self, name: str, minor: str, currency: str) -> str:
        """A field of Money ("amount", "currency", "formatted") as a JSON string, its values never NULL."""
        return self.bare(currency if name == "currency" else getattr(self, f"money_{name}")(minor, currency))

    def money_object(self, fields: list[tuple[str, str]], minor: str, currency: str) -> str:
        """A Money object of ``fields``: (response key, "amount" / "currency" / "formatted" or a JSON string
        literal, ``__typename``'s) over the minor-unit and currency expressions, never NULL."""
        return self.object_text([(key, self.money_string(name, minor, currency) if name in MONEY_FIELDS
                                  else _literal(f'"{name}"')) for key, name in fields])

    def exact_amount(self, minor: str, currency: str) -> str:
        """``Money.exact``'s amount (``minor``: an exact decimal of minor units, text or numeric) as the Decimal scalar
        prints it: in major units, with exactly the currency's places when it has no more, else with its own (trailing
        zeros cut). Exact numeric arithmetic."""
        def of_places(places: int) -> str:
            major = f"(({minor})::numeric * 0.{'0' * (places - 1)}1)" if places else f"(({minor})::numeric)"
            return (f"(CASE WHEN scale(trim_scale({major})) > {places} THEN trim_scale({major})::text "
                    f"ELSE round({major}, {places})::text END)")
        return self._by_places(currency, of_places)

    def exact_money_object(self, fields: list[tuple[str, str]], minor: str, currency: str) -> str:
        """``Money.exact``'s object of ``fields`` (as ``money_object``) over an exact decimal of minor units that may
        hold fractions of one: ``amount`` exact (``exact_amount``), ``formatted`` of the amount rounded half up
        (``rounded``). The values are evaluated once, in one-row sub-selects, not once for each leaf and branch."""
        given = f"(SELECT ({minor}) AS minor, ({currency}) AS currency) AS bgq_exact"
        values = (f"(SELECT {self.rounded('bgq_exact.minor')} AS minor, bgq_exact.currency AS currency, "
                  f"{self.exact_amount('bgq_exact.minor', 'bgq_exact.currency')} AS amount FROM {given}) AS bgq_money")
        texts = {"amount": self.bare("bgq_money.amount"),
                 **{name: self.money_string(name, "bgq_money.minor", "bgq_money.currency")
                    for name in ("currency", "formatted")}}
        pairs = [(key, texts[name] if name in MONEY_FIELDS else _literal(f'"{name}"')) for key, name in fields]
        return f"(SELECT {self.object_text(pairs)} FROM {values})"

    # -- the root statement -------------------------------------------------------------------------

    position = f"{ROW}.{POSITION}"  # a row's place in the page statement's rows

    @staticmethod
    def page_rows(statement: Any, position: Any) -> Any:
        """The rows of the resolver's paged ``statement`` with their ``position`` (a labelled row number), as the
        page statement reads them: the subquery ``ROW`` of its whole rows and their places."""
        return statement.add_columns(position).subquery(ROW)

    def page_statement(self, items: list[str], rows: Any, last: int | None) -> Any:
        """One row: for each JSON text expression of ``items``, its values over ``rows`` (``page_rows``) in
        position order joined by commas (rows past the position ``last`` left out), and the number of rows."""
        order = literal_column(self.position)  # not a subquery's c: its column proxies cost ms per request
        columns = []
        for item in items:
            aggregate = func.string_agg(aggregate_order_by(literal_column(f"{item}, ','"), order))
            if last is not None:
                aggregate = aggregate.filter(order <= bindparam("bgq_last", last, type_=Integer))
            columns.append(aggregate)
        return select(*columns, func.count()).select_from(rows)


_PRINTF_ARGUMENTS = 100  # SQLite's functions take at most 127 arguments (SQLITE_MAX_FUNCTION_ARG)


class Sqlite(Postgres):
    """SQLite's text functions; leaf formats in SQL where its text storage allows, else by functions
    registered on the connection (``SQLITE_FUNCTIONS``) that call the types' own Python."""

    name = "sqlite"

    @classmethod
    def object_text(cls, pairs: list[tuple[str, str]]) -> str:
        # One printf: each ``||`` of a chain allocates and copies the text so far (SQLite 3.40 has no concat()),
        # which was a fifth of the invoices page's statement. Its values are never NULL (coalesced to 'null').
        if len(pairs) > _PRINTF_ARGUMENTS:
            return super().object_text(pairs)
        return cls._printf("{" + ",".join(f'"{key}":%s' for key, _ in pairs) + "}", [value for _, value in pairs])

    @staticmethod
    def list_text(item: str, source: str, order_by: str) -> str:
        # SQLite 3.40 has no ORDER BY inside an aggregate: it aggregates an ordered sub-select. The brackets are
        # written in the aggregate's select (one row, also over no rows), not around it: a level less of nesting
        # for SQLite's short parser stack (``sql.parses_on_sqlite``).
        return (f"(SELECT '[' || coalesce(group_concat(bgq_item, ','), '') || ']' FROM (SELECT {item} AS bgq_item "
                f"FROM {source} ORDER BY {order_by}))")

    @staticmethod
    def quoted(expression: str) -> str:
        return f"json_quote(CAST(({expression}) AS TEXT))"

    @staticmethod
    def bare(expression: str) -> str:
        return f"('\"' || ({expression}) || '\"')"

    @staticmethod
    def number(expression: str) -> str:
        return f"CAST(({expression}) AS TEXT)"

    @staticmethod
    def string_list(expression: str) -> str:
        return (f"(SELECT '[' || coalesce(group_concat(json_quote(value), ','), '') || ']' "
                f"FROM json_each({expression}))")

    @staticmethod
    def json_elements(column: str, alias: str) -> tuple[str, str]:
        return f"json_each({column}) AS {alias}", f"{alias}.key"  # an array's key: the element's index

    @staticmethod
    def json_member(element: str, key: str) -> str:
        return f"json_extract({element}.value, {_literal('$.' + key)})"

    @staticmethod
    def json_value(column: str) -> str:  # stored as text
        return f"json({column})"

    @staticmethod
    def json_integer(json_text: str, key: str) -> str:
        return f"json_extract({json_text}, '$.\"' || ({key}) || '\"')"

    @staticmethod
    def uuid_text(column: str) -> str:  # stored as 32 hex digits
        return " || '-' || ".join(f"substr({column}, {start}, {length})"
                                  for start, length in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12)))

    @staticmethod
    def to_text(expression: str) -> str:
        return expression  # || turns numbers into text

    @staticmethod
    def global_id(type_name: str, column: str) -> str:
        return f"billing_global_id('{type_name}', {column})"

    @staticmethod
    def cursor(position: str) -> str:
        return f"billing_cursor({position})"

    @staticmethod
    def datetime(column: str) -> str:  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff', UTC
        return (f"CASE WHEN {column} IS NULL THEN NULL ELSE replace(substr({column}, 1, 19), ' ', 'T') || "
                f"CASE WHEN substr({column}, 21) IN ('', '000000') THEN '' ELSE '.' || substr({column}, 21) END "
                "|| 'Z' END")

    @staticmethod
    def decimal(column: str) -> str:
        # Stored as str(Decimal): the same text as format(value, "f") unless in exponent form.
        return f"CASE WHEN instr({column}, 'E') = 0 THEN {column} ELSE billing_decimal({column}) END"

    @staticmethod
    def rounded(column: str) -> str:
        # Stored as str(Decimal). A whole number is itself; a plain fraction ('-180129.032258') is its whole part
        # and one more away from zero when its first decimal is 5 or more (halves away from zero, as
        # ``round_half_up``); only an exponent form rounds in Python.
        point = f"instr({column}, '.')"
        away = f"CASE WHEN substr({column}, 1, 1) = '-' THEN -1 ELSE 1 END"
        return (f"CASE WHEN {column} NOT GLOB '*[^0-9-]*' THEN CAST({column} AS INTEGER) "
                f"WHEN {column} NOT GLOB '*[^0-9.-]*' THEN CAST(substr({column}, 1, {point} - 1) AS INTEGER) + "
                f"CASE WHEN substr({column}, {point} + 1, 1) >= '5' THEN {away} ELSE 0 END "
                f"ELSE billing_rounded({column}) END")

    @staticmethod
    def greatest(first: str, second: str) -> str:
        return f"max({first}, {second})"  # SQLite's max() of several arguments is a scalar function

    @staticmethod
    def percent(used: str, limit: str) -> str:
        # SQLite's integers would overflow (to a float) past 2^63 / 20000: the domain's own Python.
        return f"billing_percent({used}, {limit})"

    @staticmethod
    def integer(expression: str) -> str:
        return f"({expression})"

    def exact_money_object(self, fields: list[tuple[str, str]], minor: str, currency: str) -> str:
        # SQLite's numbers are not exact (a float past 2^53, no decimal scale): ``Money.exact``'s own Python writes
        # amount and formatted, in one printf with no sub-select: SQLite's parser stack is short
        # (``sql.parses_on_sqlite``).
        head, arguments = [], []
        for key, name in fields:
            if name in MONEY_FIELDS:
                head.append(f'"{key}":"%s"')
                arguments.append(currency if name == "currency"
                                 else f"billing_money_exact({minor}, {currency}, '{name}')")
            else:  # __typename: a name, no % in it
                head.append(f'"{key}":"{name}"')
        return self._printf("{" + ",".join(head) + "}", arguments)

    # Money in one printf: a chain of ``||`` allocates and copies at every step (SQLite 3.40 has no concat()), and
    # each printf allocates its text anew; Money's leaves were a third of the invoices page's statement as chains,
    # and its objects of one printf a leaf still a fifth.

    def money_amount(self, minor: str, currency: str) -> str:
        return self._money_leaf(minor, currency, "amount")

    def money_formatted(self, minor: str, currency: str) -> str:
        return self._money_leaf(minor, currency, "formatted")

    def _money_leaf(self, minor: str, currency: str, name: str) -> str:
        return self._by_places(currency, lambda places: self._printf(*self._money(minor, currency, places, name)))

    def money_object(self, fields: list[tuple[str, str]], minor: str, currency: str) -> str:
        """One printf a currency's number of places, writing the whole object."""
        def of_places(places: int) -> str:
            head, arguments = [], []
            for key, name in fields:
                if name in MONEY_FIELDS:
                    form, values = self._money(minor, currency, places, name)
                    head.append(f'"{key}":"{form}"')
                    arguments += values
                else:  # __typename: a name, no % in it
                    head.append(f'"{key}":"{name}"')
            return self._printf("{" + ",".join(head) + "}", arguments)
        return self._by_places(currency, of_places)

    @staticmethod
    def _printf(form: str, arguments: list[str]) -> str:
        return f"printf({', '.join([_literal(form), *arguments])})" if arguments else _literal(form)

    @staticmethod
    def _money(minor: str, currency: str, places: int, name: str) -> tuple[str, list[str]]:
        """A printf format and its arguments for Money's ``name`` in a currency of ``places``: ``amount`` (the
        digits, exactly the currency's places), ``formatted`` (sign, symbol, grouped digits, fraction),
        ``currency``."""
        if name == "currency":
            return "%s", [currency]
        magnitude, sign = f"abs({minor})", f"CASE WHEN ({minor}) < 0 THEN '-' ELSE '' END"
        codes = BY_PLACES[places]
        head, arguments = ("%s%s%,d", [sign, "CASE " + " ".join(
            f"WHEN {currency} = {_literal(code)} THEN {_literal(MONEY_PREFIXES[code])}" for code in codes) + " END"]
        ) if name == "formatted" else ("%s%d", [sign])
        if places:
            head += f".%0{places}d"
            arguments += [f"{magnitude} / {10 ** places}", f"{magnitude} % {10 ** places}"]
        else:
            arguments.append(magnitude)
        return head, arguments

    position = f"{PAGE}.{POSITION}"

    @staticmethod
    def page_rows(statement: Any, position: Any) -> Any:
        """The page's keys and places (the subquery ``PAGE``) joined to its table (as ``ROW``) for the items'
        columns. A subquery of whole rows cost a copy of every text value each time an item read it (a sixth of
        the invoices page's statement); PostgreSQL reads a whole row's subquery faster than the join. The statement's
        labelled values after the table (e.g. ``subscriptions.types.at_now``'s clock) are columns of ``ROW`` too.
        Computed rows (``columns.values_rows``: a CTE, no table and no primary key) are keyed by their place."""
        table, *values = statement._raw_columns  # noqa: SLF001
        (key,) = list(table.primary_key) or [table.c[PLACE]]  # a table's constraint, a CTE's (empty) ColumnSet
        page = statement.with_only_columns(key.label(PAGE_KEY), position, maintain_column_froms=True).subquery(PAGE)
        rows = select(table, *values).subquery(ROW) if values else table.alias(ROW)
        return page.join(rows, literal_column(f"{ROW}.{key.name}") == literal_column(f"{PAGE}.{PAGE_KEY}"))

    def page_statement(self, items: list[str], rows: Any, last: int | None) -> Any:
        order = literal_column(self.position)
        ordered = (select(*(literal_column(item).label(f"bgq_item{index}") for index, item in enumerate(items)),
                          order.label("bgq_position"))
                   .select_from(rows).order_by(order).subquery("ordered"))
        columns = []
        for index in range(len(items)):
            aggregate = func.group_concat(literal_column(f"ordered.bgq_item{index}"), literal_column("','"))
            if last is not None:
                aggregate = aggregate.filter(literal_column("ordered.bgq_position")
                                             <= bindparam("bgq_last", last, type_=Integer))
            columns.append(aggregate)
        return select(*columns, func.count()).select_from(ordered)


def _nullable(function: Callable[..., Any]) -> Callable[..., Any]:
    return lambda *values: None if values[0] is None else function(*values)


def _global_id(type_name: str, value: str) -> str:
    """``relay.to_base64(type_name, str(uuid.UUID(value)))`` for a UUID stored as 32 hex digits, by slicing
    (a third of the time: SQLite calls it for every id of a page)."""
    if len(value) != 32:
        return relay.to_base64(type_name, str(uuid.UUID(value)))
    value = value.lower()
    return b64encode(f"{type_name}:{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
                     .encode()).decode()


def _money_exact(minor: str | None, currency: str, name: str) -> str | None:
    """``Money.exact(minor, currency)``'s ``amount`` (as the Decimal scalar prints it) or ``formatted``."""
    if minor is None:
        return None
    money = Money.exact(Decimal(minor), currency)
    return _serialize_decimal(money.amount) if name == "amount" else money.formatted


SQLITE_FUNCTIONS: dict[str, tuple[int, Callable[..., Any]]] = {
    "billing_global_id": (2, _global_id),
    "billing_cursor": (1, lambda position: relay.to_base64(CURSOR_PREFIX, position)),
    "billing_decimal": (1, _nullable(lambda value: _serialize_decimal(Decimal(value)))),
    "billing_rounded": (1, _nullable(lambda value: round_half_up(Fraction(Decimal(value))))),
    "billing_percent": (2, lambda used, limit: None if limit is None else _serialize_decimal(
        LimitUse(used, limit).percent_used)),
    "billing_money_exact": (3, _money_exact),
}

DIALECTS = {"postgresql": Postgres(), "sqlite": Sqlite()}


_REGISTERED: weakref.WeakSet = weakref.WeakSet()  # the SQLite driver connections that have them


async def sqlite_functions(connection: Any) -> None:
    """Register the leaf formats on this SQLite connection (aiosqlite's), once."""
    if connection not in _REGISTERED:
        for name, (arity, function) in SQLITE_FUNCTIONS.items():
            await connection.create_function(name, arity, function, deterministic=True)
        _REGISTERED.add(connection)
