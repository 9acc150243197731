from revops.attribution.models import metadata
from revops.events.migrations import run_env

run_env(metadata)
