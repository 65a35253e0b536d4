from . import test_webhooks
from . import test_builds
from . import test_tour
