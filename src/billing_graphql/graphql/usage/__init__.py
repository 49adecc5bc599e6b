"""GraphQL for usage: recordUsage, usage, entitlements, planLimits, partner snapshots and grants."""
