"""Backfill: the records a CRM held before the system was installed, published as the
events its webhooks would have produced (``revops backfill salesforce|hubspot``)."""
