from . import test_docs
from . import test_redis
