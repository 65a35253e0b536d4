"""What a job shows its users: a step that did nothing says why, the
README's log excerpts are what the demo's jobs log, and a job's values name
nothing the deployment does not have."""

import io
import os
import re

from lxml import etree

from odoo.tests import tagged
from odoo.tools import convert_xml_import, file_open
from odoo.tools.misc import file_path

from ..tools.shipped_books import shipped_templates
from ..tools.skip_reason import skip_reason
from .common import EyrieCase, ShippedScopeMixin

CONFIG_MAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"
# The RST comment that marks a log excerpt of the README: the job of that
# deployment and action, in the demo, logs the code block after it.
EXCERPT_MARK = re.compile(r"^\.\. job-log: (?P<deployment>\S+) (?P<action>\w+)$")
# A log line the README quotes in its text.
QUOTED_LOG_LINE = re.compile(r"``((?:Step \d+ '|would )[^`]+)``")
# What differs from one database to the next: ids and times.
VARYING = (
    (re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?(\+00(:00)?|Z)?"), "<time>"),
    (re.compile(r"#\d+\b"), "#<id>"),
    (re.compile(r"(?<=-)\d+\b"), "<id>"),
)
# The values of a pgBackRest repository (eyrie_deployment_pgbackrest.py).
BACKUP_KEYS = {
    "pgbackrest",
    "backup_repo",
    "backup_location",
    "backup_options",
    "backup_s3",
    "backup_storage",
}


def readme_text():
    """The repository's README.rst."""
    addon = os.path.dirname(file_path("eyrie_deployment/__manifest__.py"))
    with open(os.path.join(addon, os.pardir, "README.rst"), encoding="utf-8") as f:
        return f.read()


def readme_excerpts(text):
    """{(deployment, action): [line, ...]}: the marked log excerpts of the
    README ``text``."""
    lines = text.splitlines()
    excerpts = {}
    for number, line in enumerate(lines):
        mark = EXCERPT_MARK.match(line)
        if not mark:
            continue
        start = number + 1
        # Blank lines, and the comment's own indented lines.
        while not lines[start].strip() or lines[start].startswith(" "):
            start += 1
        if lines[start].strip() != ".. code-block:: text":
            raise AssertionError(f"README.rst:{number + 1}: no code block after {line}")
        block = []
        for code in lines[start + 2 :]:
            if code and not code.startswith("   "):
                break
            block.append(code[3:])
        while block and not block[-1]:
            block.pop()
        excerpts[mark["deployment"], mark["action"]] = block
    return excerpts


def load_demo_deployments(env):
    """The demo's scope and deployments, as demo/eyrie_demo.xml has them;
    its other records (base's demo user, which a database without demo data
    lacks) are left out."""
    with file_open("eyrie_deployment/demo/eyrie_demo.xml", "rb") as demo:
        root = etree.parse(demo).getroot()
    for record in root.findall("record"):
        if not record.get("model", "").startswith("eyrie."):
            root.remove(record)
    records = io.BytesIO(etree.tostring(root))
    records.name = "eyrie_deployment/demo/eyrie_demo.xml"
    convert_xml_import(env, "eyrie_deployment", records, {}, mode="init")


def readme_quoted_lines(text):
    """The job log lines the README quotes in its text (inline literals
    starting with ``Step <n> '`` or ``would ``), on one line each."""
    return [" ".join(quoted.split()) for quoted in QUOTED_LOG_LINE.findall(text)]


def _normalised(lines):
    result = []
    for line in lines:
        for pattern, replacement in VARYING:
            line = pattern.sub(replacement, line)
        result.append(line.rstrip())
    return result


@tagged("post_install", "-at_install")
class TestSkippedSteps(EyrieCase):
    def test_reason_from_the_templates_comment_or_its_conditions(self):
        self.assertEqual(
            skip_reason(
                "{# Skipped:  the scope's mail catcher\n   is off. #}\n"
                "{% if values.get('mail_catcher') %}kind: Service\n{% endif %}\n"
            ),
            ("the scope's mail catcher is off", ()),
        )
        self.assertEqual(
            skip_reason(
                "{% set name = 'db' %}\n"
                "{%- if values.database_mode == 'own' -%}\nkind: A\n"
                "{% if values.x %}kind: B{% endif %}\n{% endif %}\n"
                "{% if values.database_mode == 'own' and values.repo2 %}\n"
                "---\nkind: C\n{% endif %}\n"
            ),
            (
                None,
                (
                    "values.database_mode == 'own'",
                    "values.database_mode == 'own' and values.repo2",
                ),
            ),
        )
        # Output outside any condition, or a branch of its own: which
        # condition did it is not known.
        for source in (
            "{% for item in values.items %}kind: A\n{% endfor %}",
            "kind: A\n{% if values.x %}b: 1{% endif %}",
            "{% if values.x %}kind: A{% else %}{% endif %}",
            "{{ values.objects }}{% if values.x %}kind: A{% endif %}",
            "{% if values.x %",
        ):
            with self.subTest(source=source):
                self.assertEqual(skip_reason(source), (None, ()))

    def test_a_step_that_did_nothing_says_why(self):
        book = self._make_book(
            "Skips",
            [
                (
                    "Commented",
                    "apply",
                    "{# skipped: the deployment has no cache #}\n"
                    "{% if values.get('name') == 'cache' %}"
                    + CONFIG_MAP.format(name="cache")
                    + "{% endif %}\n",
                ),
                (
                    "Applied",
                    "apply",
                    CONFIG_MAP.format(name="settings"),
                ),
                (
                    "Conditional",
                    "wait",
                    "{% if values.get('size') %}\n"
                    + CONFIG_MAP.format(name="settings")
                    + "wait: {for: exists}\n{% endif %}\n",
                ),
                (
                    "Empty loop",
                    "delete",
                    "{% for name in [] %}"
                    + CONFIG_MAP.format(name="{{ name }}")
                    + "{% endfor %}",
                ),
            ],
        )
        deployment = self._make_deployment()
        self._set_book(deployment, "deploy", book)
        deployment.action_deploy()
        self._run_jobs()
        job = deployment.job_ids.sorted("id")[-1]
        self.assertEqual(job.state, "done")
        self.assertEqual(
            job.log.splitlines(),
            [
                "Book Skips on cluster Test dry run: 4 step(s)",
                "Step 1 'Commented' (apply): skipped (the deployment has no cache)",
                "Step 2 'Applied' (apply):",
                "  would apply ConfigMap settings in namespace acme",
                (
                    "Step 3 'Conditional' (wait): skipped (its condition is "
                    "false: values.get('size'))"
                ),
                (
                    "Step 4 'Empty loop' (delete): skipped (its template "
                    "rendered no object)"
                ),
            ],
        )
        # Skipped steps are done steps: the progress counts every one.
        self.assertEqual(job.step_index, len(book.step_ids))

    def test_every_shipped_conditional_step_says_why_it_may_skip(self):
        """A shipped step whose template may render nothing gives the reason
        in words, not only its condition."""
        for xml_id, template in shipped_templates().items():
            with self.subTest(step=xml_id):
                # Conditions are read only from a template without a reason.
                self.assertEqual(skip_reason(template)[1], ())


@tagged("post_install", "-at_install")
class TestReadmeJobLogs(EyrieCase):
    """The job logs README.rst quotes (each code block marked ``.. job-log:
    <deployment> <action>``) are what the demo's jobs log, line by line, ids
    and times aside: a change of the shipped books or of the README without
    the other fails here."""

    def test_readme_excerpts_are_what_the_demo_logs(self):
        text = readme_text()
        excerpts = readme_excerpts(text)
        self.assertIn(("acme-staging", "initialize"), excerpts)
        quoted = readme_quoted_lines(text)
        self.assertTrue(quoted)
        load_demo_deployments(self.env)
        deployments = {
            name: self.env["eyrie.deployment"].search([("name", "=", name)])
            for name in ("acme-db", "acme-staging", "acme-training")
        }
        # In the README's order: the database first, then the Odoo on it.
        for name in ("acme-db", "acme-staging", "acme-training"):
            deployments[name].action_deploy()
            self._run_jobs()
            self.assertEqual(deployments[name].state, "deploy", name)
        for (name, action), excerpt in excerpts.items():
            with self.subTest(deployment=name, action=action):
                job = deployments[name].job_ids.filtered(
                    lambda job, action=action: job.action == action
                )
                self.assertEqual(len(job), 1)
                self.assertEqual(
                    _normalised(job.log.splitlines()), _normalised(excerpt)
                )
        # The lines its text quotes are lines of these jobs' logs.
        logged = {
            line.strip()
            for job in self.env["eyrie.job"].search(
                [("deployment_id", "in", [d.id for d in deployments.values()])]
            )
            for line in _normalised(job.log.splitlines())
        }
        for line in _normalised(quoted):
            with self.subTest(quoted=line):
                self.assertIn(line, logged)


@tagged("post_install", "-at_install")
class TestSharedDatabaseValues(ShippedScopeMixin, EyrieCase):
    def test_odoo_on_a_shared_database_has_no_backup_repository(self):
        database = self._create("sv-db", "pgo")
        database.action_deploy()
        self._run_jobs()
        odoo = self._create(
            "sv-odoo", database_mode="shared", database_deployment_id=database.id
        )
        own = self._create("sv-own")
        (odoo | own).action_deploy()
        self._run_jobs()
        odoo.action_pause()
        self._run_jobs()
        odoo.action_drop()
        self._run_jobs()
        jobs = self.env["eyrie.job"].search(
            [("deployment_name", "=", "sv-odoo")], order="id"
        )
        self.assertEqual(
            jobs.mapped("action"), ["initialize", "deploy", "pause", "drop"]
        )
        self.assertEqual(set(jobs.mapped("state")), {"done"})
        for job in jobs:
            values = job._job_values()
            with self.subTest(action=job.action):
                self.assertFalse(BACKUP_KEYS & set(values))
                self.assertEqual(values["db_namespace"], "sv-db")
                self.assertNotIn("namespace sv-odoo", job.values)
        deploy = jobs.filtered(lambda job: job.action == "deploy")
        self.assertIn(
            "'Backup target and schedules' (patch): skipped (the database is in a "
            "PostgreSQL deployment's cluster, which that deployment backs up)",
            deploy.log,
        )
        # The repository is its PostgreSQL deployment's, and an Odoo with
        # its own database has its own.
        for deployment, namespace in ((database, "sv-db"), (own, "sv-own")):
            values = (
                deployment.job_ids.filtered(lambda job: job.action == "deploy")
                .sorted("id")[-1]
                ._job_values()
            )
            self.assertLessEqual(BACKUP_KEYS, set(values))
            self.assertEqual(
                values["backup_location"], f"volume db-repo1 in namespace {namespace}"
            )
