from . import eyrie_project
from . import eyrie_project_events
from . import eyrie_project_branch
from . import eyrie_project_delivery
from . import eyrie_deployment
from . import eyrie_job
