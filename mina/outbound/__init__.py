"""Outgoing webhooks from the event ledger: subscriptions, signed at-least-once delivery,
replay and dead letters (docs/webhooks.md)."""
