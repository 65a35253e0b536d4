from . import eyrie_wake_nonce
from . import eyrie_cluster
from . import eyrie_scope
from . import eyrie_job
from . import eyrie_deployment_wake
from . import eyrie_deployment_activity
from . import eyrie_deployment_sleep
