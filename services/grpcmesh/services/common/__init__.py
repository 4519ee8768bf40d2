"""Plumbing every service shares: app loading, the event store client, keyed locks, rich statuses.

Services import from here, never from one another, so each can change (or be split
out) alone; this package imports no service.
"""
