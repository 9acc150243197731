"""Salesforce's published Pub/Sub API proto and the message classes generated from it
(see README.md beside it)."""
