"""Ingest's configuration, from the environment (env var = field name upper-cased).

Every default works on one machine, so `revops-ingest` starts and the demo can sign its
webhooks with the same well-known development secrets:

- HubSpot app client secret: ``dev-hubspot-secret`` (``HUBSPOT_CLIENT_SECRETS``, a JSON
  list: several during a rotation).
- Salesforce organisation allowed: ``00D000000000001`` (``SALESFORCE_ORG_IDS``; compared
  on the first 15 characters, so the 18-character form matches too). An empty list
  refuses every outbound message.
- Salesforce event relay HMAC secret: ``dev-salesforce-events-secret``.
- Product sign-ups, Standard Webhooks secret: ``whsec_`` + base64 of the 24 bytes
  ``revops-dev-signup-secret`` (``PRODUCT_WEBHOOK_SECRETS``, a JSON list).

Never use these outside a laptop: they are public.
"""

from __future__ import annotations

import base64

from pydantic import Field, SecretStr

from revops.events.settings import KafkaSettings
from revops.ingest.domain.hubspot import CompanyProperties
from revops.ingest.domain.salesforce import CustomFields

DEV_SIGNUP_KEY = b"revops-dev-signup-secret"
DEV_WHSEC = "whsec_" + base64.b64encode(DEV_SIGNUP_KEY).decode()


class IngestSettings(KafkaSettings):
    service_name: str = "ingest"
    log_level: str = "INFO"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # Processes serving the API, each with its own producer (why two: main.py).
    http_workers: int = Field(default=2, ge=1)

    # The URL HubSpot calls, scheme and host (e.g. https://hooks.example.com), used to
    # rebuild the signed URI behind a proxy. Empty: the URL of the request as received.
    public_base_url: str = ""

    # Size limit of any webhook body, in bytes (413 above it).
    max_body_bytes: int = Field(default=1_048_576, ge=1)
    # Send at once: a webhook waits for its acknowledgement, so lingering adds straight to
    # its latency; under load, batches form by themselves while a request is in flight.
    kafka_linger_ms: int = Field(default=0, ge=0)
    # The whole request must be answered well within the senders' 2 s budget for a 503:
    # with 1.9 s, 113 of 1,534 answers took over 2 s on a CPU-starved machine (faults run).
    publish_deadline_s: float = Field(default=1.5, gt=0)
    retry_after_s: int = Field(default=1, ge=0)
    # Webhooks of one source (hubspot, hubspot_forms, salesforce_outbound,
    # salesforce_events, product) handled at once by one worker process; past it a request
    # is answered 429 with Retry-After before anything of it is read or published (the
    # CRMs retry). 0: no limit. Well above what a steady load needs (64 connections
    # shared by 2 workers in the benchmarks); a flood queues at the sender instead of here.
    webhook_max_concurrent: int = Field(default=256, ge=0)
    webhook_busy_retry_after_s: int = Field(default=2, ge=0)
    # A new lead's CRM state offsets are read at most once per this many ms per worker:
    # the new leads that arrive meanwhile share the next read (a Kafka round trip each),
    # and go to Kafka in one produce request after it. A lead alone, after a quiet spell,
    # is read for at once. Under load, 100 rather than 25 let ingest keep more of the rate
    # in four runs of four (docs/RESULTS.md), at up to 100 ms on a new lead's answer.
    state_offsets_gather_ms: int = Field(default=100, ge=0, le=1000)
    # Off: new leads go without state offsets (the router reads them itself when it
    # routes, or routes at once with CRM_STATE_WAIT_S=0).
    stamp_state_offsets: bool = True

    # --- HubSpot ---
    hubspot_client_secrets: list[SecretStr] = Field(
        default_factory=lambda: [SecretStr("dev-hubspot-secret")]
    )
    hubspot_signature_versions: list[str] = Field(default_factory=lambda: ["v1", "v2", "v3"])
    hubspot_timestamp_tolerance_s: int = Field(default=300, ge=1)
    hubspot_max_batch: int = Field(default=100, ge=1)
    # Form id -> form type (demo_request, contact, ebook, webinar, ...), when the target
    # URL carries no ``form_type`` query parameter (JSON object in the environment).
    form_types_by_id: dict[str, str] = Field(default_factory=dict)
    # Our field -> the form field (HubSpot property) that carries it.
    form_fields: dict[str, str] = Field(
        default_factory=lambda: {
            "email": "email",
            "first_name": "firstname",
            "last_name": "lastname",
            "company": "company",
            "country": "country",
            "is_consultant": "is_consultant",
            "utm_campaign": "utm_campaign",
        }
    )

    # --- Salesforce ---
    salesforce_org_ids: list[str] = Field(default_factory=lambda: ["00D000000000001"])
    # Source addresses or networks allowed to send outbound messages (empty: any). Set
    # it from Salesforce's published ranges (help article 000321501).
    salesforce_source_networks: list[str] = Field(default_factory=list)
    salesforce_max_notifications: int = Field(default=100, ge=1)
    salesforce_events_secrets: list[SecretStr] = Field(
        default_factory=lambda: [SecretStr("dev-salesforce-events-secret")]
    )
    salesforce_events_tolerance_s: int = Field(default=300, ge=1)
    # API names of the org's custom fields.
    salesforce_contract_end_field: str = "Contract_End_Date__c"
    salesforce_consultant_field: str = "Is_Consultant__c"
    salesforce_sdr_certified_field: str = "SDR_Certified__c"
    salesforce_region_field: str = "Region__c"
    # An account's seats, plan and iACV (what its tier is decided on); empty: not read.
    salesforce_users_field: str = "Users__c"
    salesforce_plan_field: str = "Plan__c"
    salesforce_iacv_field: str = "iACV__c"
    # The same on a HubSpot company (internal property names).
    hubspot_users_property: str = "users"
    hubspot_plan_property: str = "plan"
    hubspot_iacv_property: str = "iacv"

    def salesforce_custom_fields(self) -> CustomFields:
        return CustomFields(
            contract_end=self.salesforce_contract_end_field,
            consultant=self.salesforce_consultant_field,
            sdr_certified=self.salesforce_sdr_certified_field,
            region=self.salesforce_region_field,
            users=self.salesforce_users_field,
            plan=self.salesforce_plan_field,
            iacv=self.salesforce_iacv_field,
        )

    def hubspot_company_properties(self) -> CompanyProperties:
        return CompanyProperties(
            users=self.hubspot_users_property,
            plan=self.hubspot_plan_property,
            iacv=self.hubspot_iacv_property,
        )

    # --- product sign-ups (Standard Webhooks) ---
    product_webhook_secrets: list[SecretStr] = Field(default_factory=lambda: [SecretStr(DEV_WHSEC)])
    product_timestamp_tolerance_s: int = Field(default=300, ge=1)
