from revops.events.migrations import run_env
from revops.renewals.models import metadata

run_env(metadata)
