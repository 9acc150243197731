"""Which rep changes put a rep's failed write-backs back in the queue: a CRM user id it
did not have (a new rep with one, too), never a change of anything else."""

from revops.router.roster import crm_ids_set

STORED = {
    "sdr-1": {"hubspot_owner_id": None, "salesforce_user_id": "005SF1", "weight": 1},
    "sdr-2": {"hubspot_owner_id": "hs-2", "salesforce_user_id": None, "weight": 1},
}


def change(**fields: object) -> dict[str, object]:
    return {"hubspot_owner_id": None, "salesforce_user_id": None, "weight": 1, **fields}


def test_a_crm_id_set_or_changed_requeues():
    rows = {
        "sdr-1": change(hubspot_owner_id="hs-1", salesforce_user_id="005SF1"),
        "sdr-2": change(hubspot_owner_id="hs-2b"),
    }
    assert crm_ids_set(STORED, rows) == ["sdr-1", "sdr-2"]


def test_a_new_rep_with_a_crm_id_requeues_one_without_does_not():
    rows = {"new-1": change(salesforce_user_id="005SFNEW"), "new-2": change()}
    assert crm_ids_set(STORED, rows) == ["new-1"]


def test_other_changes_or_a_crm_id_removed_requeue_nothing():
    rows = {
        "sdr-1": change(salesforce_user_id="005SF1", weight=3),
        "sdr-2": change(hubspot_owner_id=None),
    }
    assert crm_ids_set(STORED, rows) == []
