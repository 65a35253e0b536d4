import threading


def in_test():
    return getattr(threading.current_thread(), "testing", False)


def commit_unless_testing(cr):
    """Commit ``cr``, except in tests, which run in one rolled-back transaction.

    Only the crons call this, on the cursor Odoo gives them; each caller says
    why its commit point is safe.
    """
    if not in_test():
        cr.commit()  # pylint: disable=invalid-commit
