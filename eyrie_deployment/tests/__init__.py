from . import test_lifecycle
from . import test_dispatch
from . import test_templates
from . import test_timers
from . import test_job_runner
from . import test_security
from . import test_xmlrpc
from . import test_concurrency
