"""The GraphQL layer: thin resolvers that call services and map results to types."""
