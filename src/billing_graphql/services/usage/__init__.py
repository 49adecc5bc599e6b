"""Usage metering: ingestion, reading against limits, entitlements, partner snapshots."""
