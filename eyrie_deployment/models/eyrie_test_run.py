import re

from odoo import api, fields, models

TEST_STATES = [
    ("passed", "Passed"),
    ("failed", "Failed"),
    ("error", "Error"),
]

# What the test Job's script prints for Eyrie to read (run_tests.sh), and
# the lines Odoo's test runner logs for each failing test.
RESULT_RE = re.compile(
    r"^EYRIE-TESTS-RESULT: (\d+) failed, (\d+) error\(s\) of (\d+) tests", re.MULTILINE
)
ERROR_RE = re.compile(r"^EYRIE-TESTS-ERROR: ?(.*)$", re.MULTILINE)
FAILURE_RE = re.compile(r" odoo\.addons\.[\w.]+: (FAIL|ERROR): (\S+)")
# The end of a test log kept on the run (the Job's pod keeps it all).
MAX_LOG_CHARS = 200_000


def parse_test_log(log):
    """{state, tests_run, tests_failed, tests_errors, failures, message} of
    a test Job's log."""
    result = RESULT_RE.search(log or "")
    if not result:
        error = ERROR_RE.search(log or "")
        return {
            "state": "error",
            "message": (error.group(1).strip() if error else "")
            or "the test run printed no result (see its log)",
        }
    failed, errors, run = (int(group) for group in result.groups())
    failures = []
    for match in FAILURE_RE.finditer(log):
        name = f"{match.group(1)}: {match.group(2)}"
        if name not in failures:
            failures.append(name)
    return {
        "state": "passed" if not failed and not errors else "failed",
        "tests_run": run,
        "tests_failed": failed,
        "tests_errors": errors,
        "failures": "\n".join(failures),
    }


class EyrieTestRun(models.Model):
    """One run of an Odoo deployment's module tests, by the Job its deploy
    starts once the new code serves: what ran, what failed, and the log."""

    _name = "eyrie.test.run"
    _description = "Eyrie Test Run"
    _order = "id desc"

    deployment_id = fields.Many2one(
        "eyrie.deployment", required=True, ondelete="cascade", index=True, readonly=True
    )
    # The deployment's, set at creation: the multi-company rule reads it.
    company_id = fields.Many2one("res.company", readonly=True, index=True)
    job_id = fields.Many2one(
        "eyrie.job", ondelete="set null", readonly=True, index="btree_not_null"
    )
    modules = fields.Char(readonly=True, help="The modules whose tests ran.")
    commits = fields.Char(
        readonly=True, help="The commits of the addons repositories tested."
    )
    state = fields.Selection(TEST_STATES, required=True, readonly=True)
    tests_run = fields.Integer(readonly=True)
    tests_failed = fields.Integer(readonly=True)
    tests_errors = fields.Integer(readonly=True)
    tests_passed = fields.Integer(compute="_compute_tests_passed")
    failures = fields.Text(readonly=True, help="The tests that failed, one a line.")
    message = fields.Char(readonly=True)
    log = fields.Text(readonly=True)

    @api.depends("tests_run", "tests_failed", "tests_errors")
    def _compute_tests_passed(self):
        for run in self:
            run.tests_passed = max(
                run.tests_run - run.tests_failed - run.tests_errors, 0
            )

    @api.depends("state", "tests_run", "tests_failed", "tests_errors")
    def _compute_display_name(self):
        for run in self:
            run.display_name = run._summary()

    def _summary(self):
        self.ensure_one()
        if self.state == "error":
            return self.env._("tests could not run: %s", self.message)
        return self.env._(
            "%(passed)s passed, %(failed)s failed, %(errors)s errors",
            passed=self.tests_passed,
            failed=self.tests_failed,
            errors=self.tests_errors,
        )

    @api.model
    def _fields_from_log(self, log):
        found = parse_test_log(log)
        return found | {"log": (log or "")[-MAX_LOG_CHARS:]}
