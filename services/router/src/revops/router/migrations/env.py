from revops.events.migrations import run_env
from revops.router.models import metadata

run_env(metadata)
