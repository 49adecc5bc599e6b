"""billing-graphql: a GraphQL billing gateway."""

__version__ = "0.1.0"
