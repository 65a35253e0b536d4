from . import wake
