from . import test_instance_activity
from . import test_route_schemas
from . import test_sleep
from . import test_wake_concurrency
from . import test_waker_live
