"""Salesforce Change Data Capture through the Pub/Sub API (gRPC, Avro)."""
