"""Loops that claim due work and call services (webhook delivery, ...)."""
