"""GraphQL for revenue analytics."""
