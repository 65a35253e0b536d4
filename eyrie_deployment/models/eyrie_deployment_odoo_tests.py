from odoo import api, fields, models
from odoo.exceptions import ValidationError

from .eyrie_test_run import TEST_STATES

TESTS_JOB = "odoo-tests"


class EyrieDeployment(models.Model):
    """The tests of an Odoo deployment's modules (its values' ``tests``),
    run by a Job after each deploy that changes code, on a throwaway
    database beside the instance. A failing test marks the deployment; it
    does not stop it."""

    _inherit = "eyrie.deployment"

    test_run_ids = fields.One2many(
        "eyrie.test.run", "deployment_id", string="Test Runs"
    )
    test_state = fields.Selection(
        TEST_STATES + [("running", "Running"), ("none", "Not Run")],
        string="Tests",
        compute="_compute_test_state",
        help="The last run of the tests of the modules its values name "
        "('tests'), after a deploy that changed code.",
    )
    test_summary = fields.Char(string="Last Test Run", compute="_compute_test_state")

    @api.depends("test_run_ids.state", "state", "values")
    def _compute_test_state(self):
        for deployment in self:
            last = deployment.test_run_ids.sorted("id", reverse=True)[:1]
            deployment.test_summary = last._summary() if last else False
            if (
                deployment.state in ("initializing", "deploying")
                and deployment._odoo_tests_asked()
            ):
                deployment.test_state = "running"
            else:
                deployment.test_state = last.state or "none"

    def _odoo_tests_asked(self):
        if self.deployment_type != "odoo":
            return False
        try:
            return bool(self._effective_values().get("tests"))
        except ValidationError:
            return False

    def _on_deploy_done(self, job):
        result = super()._on_deploy_done(job)
        values = self._odoo_code_job_values(job)
        if (
            values
            and values.get("tests")
            and values.get("upgrade")
            # A dry run ran no test: nothing to record. The cluster's
            # settings are managers' fields.
            and not self.sudo().cluster_id.dry_run
        ):
            self._odoo_record_test_run(job, values)
        return result

    def _on_deploy_failed(self, job):
        values = self._odoo_code_job_values(job)
        if (
            values
            and values.get("tests")
            and values.get("upgrade")
            and TESTS_JOB in (job.error_message or "")
        ):
            # The code serves (the rollout was done before the tests): the
            # test Job could not run, which marks the run, not the deploy.
            return self.with_context(
                eyrie_tests_error=job.error_message
            )._on_deploy_done(job)
        return super()._on_deploy_failed(job)

    def _odoo_record_test_run(self, job, values):
        log = self._odoo_job_log(TESTS_JOB, "tests")
        found = self.env["eyrie.test.run"]._fields_from_log(log)
        error = self.env.context.get("eyrie_tests_error")
        if error:
            found |= {"state": "error", "message": error}
        # Test runs are the system's records: users read them.
        run = (
            self.env["eyrie.test.run"]
            .sudo()
            .create(
                found
                | {
                    "deployment_id": self.id,
                    "company_id": self.company_id.id,
                    "job_id": job.id,
                    "modules": ",".join(values["tests"]),
                    "commits": ", ".join(
                        item["commit"][:12] for item in values.get("commits") or ()
                    ),
                }
            )
        )
        detail = f" ({run.failures.replace(chr(10), ', ')})" if run.failures else ""
        self._message_log(
            body=self.env._(
                "Tests of %(modules)s: %(summary)s%(detail)s",
                modules=run.modules,
                summary=run._summary(),
                detail=detail,
            )
        )
        return run
