import logging

_logger = logging.getLogger(__name__)


def int_param(env, key, default):
    """System parameter ``key`` as a whole number, ``default`` when it is
    unset or not a number: a typo in a parameter must not stop a cron."""
    # System parameters are readable by administrators only.
    value = env["ir.config_parameter"].sudo().get_param(key)
    if value in (None, False, ""):
        return default
    try:
        return int(value)
    except ValueError:
        _logger.warning(
            "System parameter %s is %r, not a whole number: using %s",
            key,
            value,
            default,
        )
        return default
