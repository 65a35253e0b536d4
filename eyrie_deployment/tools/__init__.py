from . import executor
from . import template
from . import transaction
from . import kubernetes_executor
from . import parameters
