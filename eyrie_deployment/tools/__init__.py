from . import executor
from . import template
