"""The few non-GraphQL routes."""
