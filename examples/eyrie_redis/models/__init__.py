from . import eyrie_deployment_redis
