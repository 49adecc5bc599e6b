"""Pure billing rules: no SQLAlchemy, Strawberry or Litestar imports here."""
