from . import eyrie_cluster
from . import eyrie_deployment_book
from . import eyrie_deployment_book_step
from . import eyrie_scope
from . import eyrie_deployment
from . import eyrie_job
from . import res_config_settings
