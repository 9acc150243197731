"""The records of the fake org (``fake_crm``): each computed from its index when asked
for, never stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from revops.ingest.backfill.fake_crm import FakeOrg

BASE_TIME = datetime(2025, 1, 1, tzinfo=UTC)
STAGES = ("Prospecting", "Qualification", "Proposal", "Closed Won")
COUNTRIES = ("United States", "Germany", "Japan", "France", "Brazil")
REGIONS = ("AMER", "EMEA", "APAC", "EMEA", "AMER")


def sfid(prefix: str, index: int) -> str:
    """An 18-character Salesforce id (digits only: its checksum suffix is AAA)."""
    return f"{prefix}{index:012d}AAA"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def salesforce_record(org: FakeOrg, sobject: str, i: int) -> dict[str, Any]:
    """Every field of record ``i`` (1-based) of an object."""
    stamp = iso(org.stamp(i))
    common = {"CreatedDate": stamp, "LastModifiedDate": stamp, "SystemModstamp": stamp}
    owner = sfid("005", org.owner(i))
    match sobject:
        case "Account":
            return {
                "Id": sfid("001", i),
                "Name": f"Account {i}",
                "Website": f"https://www.{org.domain(i)}/",
                "OwnerId": owner,
                "BillingCountry": COUNTRIES[i % len(COUNTRIES)],
                "Region__c": REGIONS[i % len(REGIONS)],
                "Users__c": org.broken_value("Account", i, 10 + i % 900, "many"),
                "Plan__c": "Enterprise" if i % 3 == 0 else "Team",
                "iACV__c": float(1000 * (i % 200 + 1)),
                **common,
            }
        case "Contact":
            account = (i - 1) // org.contacts_per_account + 1
            return {
                "Id": sfid("003", i),
                "Email": org.broken_value(
                    "Contact", i, f"person{i}@{org.domain(account)}", "not an email"
                ),
                "FirstName": "Person",
                "LastName": str(i),
                "AccountId": sfid("001", account),
                "OwnerId": owner,
                "MailingCountry": COUNTRIES[account % len(COUNTRIES)],
                "LeadSource": "Web",
                "CreatedById": owner,
                "Is_Consultant__c": False,
                "Region__c": REGIONS[account % len(REGIONS)],
                **common,
            }
        case "Lead":
            return {
                "Id": sfid("00Q", i),
                "Email": org.broken_value("Lead", i, f"lead{i}@prospect{i}.example.org", "@"),
                "FirstName": "Lead",
                "LastName": str(i),
                "Company": f"Prospect {i}",
                "Country": COUNTRIES[i % len(COUNTRIES)],
                "LeadSource": "Web",
                "Status": "Open",
                "OwnerId": owner,
                "IsConverted": False,
                "ConvertedAccountId": None,
                "ConvertedContactId": None,
                "ConvertedOpportunityId": None,
                "ConvertedDate": None,
                "CreatedById": owner,
                "Is_Consultant__c": False,
                "Region__c": REGIONS[i % len(REGIONS)],
                **common,
            }
        case "Opportunity":
            account = (i - 1) // org.opportunities_per_account + 1
            return {
                "Id": sfid("006", i),
                "AccountId": sfid("001", account),
                "Name": f"Deal {i}",
                "StageName": STAGES[i % len(STAGES)],
                "Amount": org.broken_value("Opportunity", i, float(5000 + i), "lots"),
                "CloseDate": (BASE_TIME + timedelta(days=30 + i % 300)).date().isoformat(),
                "OwnerId": owner,
                "Type": "New Business",
                "ForecastCategoryName": "Pipeline",
                "LeadSource": "Web",
                "IsClosed": STAGES[i % len(STAGES)] == "Closed Won",
                "IsWon": STAGES[i % len(STAGES)] == "Closed Won",
                "CreatedById": owner,
                "ContactId": None,
                "CampaignId": None,
                "Contract_End_Date__c": None,
                **common,
            }
        case "OpportunityHistory":
            # Two stage changes per opportunity: record 2k-1 and 2k are opportunity k's.
            opportunity = (i + 1) // 2
            account = (opportunity - 1) // org.opportunities_per_account + 1
            return {
                "Id": sfid("008", i),
                "OpportunityId": sfid("006", opportunity),
                "Opportunity": {
                    "attributes": {"type": "Opportunity"},
                    "AccountId": sfid("001", account),
                },
                "StageName": STAGES[(i + 1) % 2],
                # A month before the opportunities' last changes: their stage is newer.
                "CreatedDate": iso(org.stamp(i) - timedelta(days=30)),
                "SystemModstamp": iso(org.stamp(i) - timedelta(days=30)),
            }
        case "Task" | "Event":
            moment = iso(org.activity_time(i))
            account = i % org.accounts + 1
            return {
                "Id": sfid("00T" if sobject == "Task" else "00U", i),
                "Subject": f"{sobject} {i}",
                "TaskSubtype": "Call" if sobject == "Task" else None,
                "Type": "Call" if sobject == "Task" else "Meeting",
                "WhoId": sfid("003", (account - 1) * org.contacts_per_account + 1),
                "WhatId": sfid("001", account),
                "AccountId": sfid("001", account),
                "OwnerId": owner,
                "ActivityDate": org.activity_time(i).date().isoformat(),
                "CreatedDate": moment,
                "SystemModstamp": moment,
            }
        case "User":
            return {
                "Id": sfid("005", i),
                "Name": f"Rep {i}",
                "Email": f"rep{i}@seller.example.com",
                "IsActive": True,
                "Sales_Role__c": "AE" if i % 2 == 0 else "SDR",
                "Region__c": REGIONS[i % len(REGIONS)],
                "SDR_Certified__c": i % 3 == 0,
                "Is_Consultant__c": False,
                **common,
            }
    raise KeyError(sobject)


def salesforce_count(org: FakeOrg, sobject: str) -> int:
    return {
        "Account": org.accounts,
        "Contact": org.contacts,
        "Lead": org.leads,
        "Opportunity": org.opportunities,
        "OpportunityHistory": 2 * org.opportunities,
        "Task": org.activities,
        "Event": org.activities,
        "User": org.users,
    }[sobject]
