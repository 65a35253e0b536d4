from . import executor
from . import template
from . import transaction
