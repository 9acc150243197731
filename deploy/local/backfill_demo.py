"""`make backfill-demo`: a backfill of both CRMs from the local fake of their APIs into
the running system (`make infra`; start the services with `make up` to see them apply
it). The fake org holds 200 accounts with 3 contacts and an opportunity each, recent
tasks and events; HubSpot the same as companies, contacts and deals. Run it twice: the
second run publishes the same events again, which every service skips.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from pydantic import SecretStr

from revops.ingest.backfill.command import BackfillSettings, backfill, print_summary
from revops.ingest.backfill.fake_crm import FakeOrg, serving

STATE = Path(".revops/backfill-demo-checkpoints.json")


async def main() -> int:
    org = FakeOrg(accounts=200, leads=40, activities=100, users=6, broken={("Contact", 7)})
    async with serving(org):
        print(f"fake Salesforce and HubSpot at {org.url}")
        settings = BackfillSettings(
            salesforce_login_url=org.url,
            salesforce_client_id=org.client_id,
            salesforce_client_secret=SecretStr(org.client_secret),
            hubspot_api_base=org.url,
            hubspot_access_token=SecretStr(org.hubspot_token),
            backfill_state_file=STATE,
        )
        complete = True
        for crm in ("salesforce", "hubspot"):
            print(f"\nrevops backfill {crm} (contact 7 is broken on purpose: counted, skipped)")
            summary = await backfill(crm, settings, restart=True)
            print_summary(summary)
            complete = complete and summary.complete
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
