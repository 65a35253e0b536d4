"""The code of Odoo deployments: addons repositories checked as data and
pinned to commits by a real git server on loopback (``git_peer``), the
rendered fetch and upgrade run for real (git, then Odoo 18.0 against a
private PostgreSQL cluster), and the deploys that change code on the
emulated cluster: upgrade, rollback, releases."""

import ast
import base64
import itertools
import json
import os

from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import Form, get_db_name, new_test_user, tagged

from .common import EyrieCase, ShippedScopeMixin
from .git_peer import VERSIONS, GitPeer
from .kube_common import (
    JOB_FAILED,
    KubernetesCase,
    OperatorsMixin,
    TwoUsersRpcCase,
    job_pod,
)
from .odoo_container import OdooContainerMixin
from .private_postgres import PrivatePostgres, free_port

V1, V2, V3 = VERSIONS
TOKEN = "glpat-eyrie-test-token-1234"


def _machine_addons():
    """The folder of Odoo's addons besides odoo/addons on this machine."""
    import odoo

    return os.path.abspath(os.path.join(os.path.dirname(odoo.__file__), "..", "addons"))


def _repositories(url, ref="18.0", **extra):
    return json.dumps({"repositories": [{"url": url, "ref": ref, **extra}]})


def peer_with_credential(case, token):
    """A git peer for the test class ``case`` (token-protected, its own
    CA) and the git credential ``peer`` that reads it."""
    git = GitPeer(token=token)
    git.__enter__()
    case.addClassCleanup(git.__exit__)
    credential = case.env["eyrie.git.credential"].create(
        {
            "name": "peer",
            "kind": "https",
            "username": git.username,
            "token": token,
            "ca_certificate": git.ca_pem,
        }
    )
    return git, credential


class CodeScopeMixin:
    """A git peer for the class (token-protected, its own CA), offered by
    the shipped scope as credential ``peer``; ``git_hosts`` allows it."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.git, cls.credential = peer_with_credential(cls, TOKEN)
        cls.shipped.write(
            {
                "git_hosts": "localhost, github.com",
                "git_credential_ids": [(6, 0, cls.credential.ids)],
            }
        )

    def _sample(self, name):
        """A repository ``name`` on the peer: {version: commit}, the branch
        18.0 at the first."""
        return self.git.create_sample(name)

    def _odoo_with_code(self, name, repository, modules=("eyrie_sample",)):
        return self._create(
            name,
            values=json.dumps(
                {
                    "repositories": [
                        {"url": self.git.url(repository), "ref": "18.0"}
                        | {"credential": "peer"}
                    ],
                    "modules": list(modules),
                }
            ),
        )


@tagged("post_install", "-at_install")
class TestCodeValues(ShippedScopeMixin, EyrieCase):
    """Users' repositories, modules and images are data, from the hosts and
    registries their scope allows."""

    def setUp(self):
        super().setUp()
        self.shipped.git_hosts = "github.com, gitlab.example.com"
        self.refusals = self._create("code-refusals")

    def _refused(self, values, pattern):
        odoo = self.refusals
        with self.assertRaisesMessage(ValidationError, pattern):
            odoo.values = json.dumps(values)
        self.assertEqual(odoo.values, "{}", "the refused values were kept")

    def test_a_repository_on_an_allowed_host_is_accepted(self):
        odoo = self._create("code-ok")
        odoo.values = _repositories(
            "https://github.com/OCA/web.git", "18.0", path="addons"
        )
        odoo.values = _repositories("git@gitlab.example.com:acme/addons.git", "v1.2")
        odoo.values = json.dumps({"modules": ["sale_management", "web_responsive"]})

    def test_other_transports_local_paths_and_options_are_refused(self):
        for url in (
            "file:///etc/odoo",
            "/srv/git/addons.git",
            "ext::sh -c touch% /tmp/pwned",
            "http://github.com/OCA/web.git",
            "git://github.com/OCA/web.git",
            "--upload-pack=touch /tmp/pwned",
            "-oProxyCommand=touch@github.com:x",
            "ssh://-oProxyCommand=touch/x",
            "https://github.com/OCA/../../etc.git",
            "https://github.com/-u/x.git?x=1",
        ):
            with self.subTest(url=url):
                self._refused(
                    {"repositories": [{"url": url, "ref": "18.0"}]}, "'repositories'"
                )

    def test_a_password_in_a_url_is_refused(self):
        self._refused(
            {"repositories": [{"url": "https://me:s3cret@github.com/a/b.git"}]},
            "user or password in it .*credential",
        )

    def test_hosts_the_scope_does_not_allow_are_refused(self):
        self._refused(
            {"repositories": [{"url": "https://evil.example.com/a.git", "ref": "x"}]},
            "host evil.example.com, which the scope does not allow .*Git Hosts",
        )
        self.shipped.git_hosts = False
        self._refused(
            {"repositories": [{"url": "https://github.com/a/b.git", "ref": "x"}]},
            r"allowed: none",
        )

    def test_bad_refs_paths_credentials_and_modules_are_refused(self):
        url = "https://github.com/OCA/web.git"
        for ref in ("--output=/tmp/x", "a..b", "main.lock", "a b", "", None, "@{-1}"):
            with self.subTest(ref=ref):
                self._refused(
                    {"repositories": [{"url": url, "ref": ref}]}, "has the ref"
                )
        self._refused(
            {"repositories": [{"url": url, "ref": "18.0", "path": "../../etc"}]},
            "has the path",
        )
        self._refused(
            {"repositories": [{"url": url, "ref": "18.0", "credential": "admin"}]},
            "credential 'admin', which the scope does not offer",
        )
        self._refused(
            {"repositories": [{"url": url, "ref": "18.0", "depth": 1}]},
            "with 'depth'",
        )
        for modules in (["Sale"], ["sale; rm -rf /"], "sale", ["-i"]):
            with self.subTest(modules=modules):
                self._refused({"modules": modules}, "'modules'")

    def test_images_come_from_the_scopes_registries(self):
        self.shipped.image_registries = "docker.io, registry.example.com"
        odoo = self._create("code-images")
        odoo.values = json.dumps({"image": "registry.example.com/acme/odoo:18.0"})
        odoo.values = json.dumps({"image": "odoo:18.0"})
        for key, image in (
            ("image", "ghcr.io/evil/odoo:18.0"),
            ("git_image", "evil.example.com:5000/git:latest"),
            ("mail_catcher_image", "quay.io/x/mailpit:1"),
        ):
            with self.subTest(key=key):
                self._refused({key: image}, f"'{key}' is .*which the scope does not")

    def test_the_scopes_own_defaults_follow_its_rules(self):
        with self.assertRaisesMessage(ValidationError, "does not allow"):
            self.shipped.values = json.dumps(
                {"odoo": {"repositories": [{"url": "https://x.org/a.git", "ref": "1"}]}}
            )
        with self.assertRaisesMessage(ValidationError, "Git Hosts"):
            self.shipped.git_hosts = "github.com, -oProxyCommand"

    def test_the_everyday_values_are_fields_of_the_form(self):
        self.shipped.values = json.dumps({"odoo": {"workers": 4}})
        odoo = self._create("code-form").with_user(self.user)
        odoo.sudo().user_id = self.user
        with Form(odoo) as form:
            self.assertEqual(form.odoo_image, "odoo:18.0")
            self.assertEqual(form.odoo_workers, 4, "the scope's default")
            form.odoo_replicas = 2
            form.odoo_modules = "sale_management, web_responsive"
        self.assertEqual(
            json.loads(odoo.values),
            {"replicas": 2, "modules": ["sale_management", "web_responsive"]},
        )
        self.assertEqual(odoo._effective_values()["workers"], 4)
        # Checked as the JSON is: the values stay as they were.
        for field, value, pattern in (
            ("odoo_modules", "sale; drop", "'modules' holds"),
            ("odoo_image", "ghcr.io/x/odoo:18", "registry ghcr.io"),
            ("odoo_storage", "lots", "'storage' is 'lots'"),
        ):
            with self.subTest(field=field):
                self.shipped.image_registries = "docker.io"
                with self.assertRaisesMessage(ValidationError, pattern):
                    odoo.write({field: value})
                self.assertEqual(json.loads(odoo.values)["replicas"], 2)
        odoo.values = _repositories("https://github.com/OCA/web.git", path="addons")
        self.assertEqual(
            odoo.odoo_repositories, "https://github.com/OCA/web.git 18.0 path=addons"
        )

    def test_the_repositories_are_rows_of_the_form(self):
        odoo = self._create("code-rows")
        odoo.sudo().user_id = self.user
        with Form(odoo.with_user(self.user)) as form:
            with form.repository_ids.new() as row:
                row.url = "https://github.com/OCA/web.git"
                row.ref = "18.0"
            with form.repository_ids.new() as row:
                row.url = "git@gitlab.example.com:acme/addons.git"
                row.ref = "main"
                row.path = "addons"
        self.assertEqual(
            json.loads(odoo.values)["repositories"],
            [
                {"url": "https://github.com/OCA/web.git", "ref": "18.0"},
                {
                    "url": "git@gitlab.example.com:acme/addons.git",
                    "ref": "main",
                    "path": "addons",
                },
            ],
        )
        # The JSON written in the Values tab: the rows follow.
        odoo.values = _repositories("https://github.com/OCA/server-tools.git")
        self.assertEqual(odoo.repository_ids.mapped("url"), [
            "https://github.com/OCA/server-tools.git"
        ])  # fmt: skip
        # A row is checked as the JSON is; nothing changes.
        with self.assertRaisesMessage(ValidationError, "other transports"):
            odoo.with_user(self.user).repository_ids.url = "file:///etc"
        self.assertEqual(
            odoo.repository_ids.url, "https://github.com/OCA/server-tools.git"
        )
        # Another user of the company changes none of them.
        other = new_test_user(
            self.env,
            login="code_rows_other",
            groups="eyrie_deployment.group_eyrie_user",
        )
        with self.assertRaises(AccessError):
            odoo.repository_ids.with_user(other).ref = "17.0"
        with self.assertRaises(AccessError):
            self.env["eyrie.deployment.repository"].with_user(other).create(
                {"deployment_id": odoo.id, "url": "https://github.com/a/b.git"}
            )
        # Removing the last row removes the key: the scope's apply again.
        odoo.with_user(self.user).repository_ids.unlink()
        self.assertNotIn("repositories", json.loads(odoo.values))

    def test_registry_credentials_are_managers_and_checked(self):
        Registry = self.env["eyrie.registry.credential"]
        with self.assertRaisesMessage(ValidationError, "'Registry' is"):
            Registry.create(
                {"name": "bad", "registry": "-oX", "username": "u", "password": "p"}
            )
        with self.assertRaisesMessage(ValidationError, "fill in 'Password'"):
            Registry.create({"name": "empty", "registry": "ghcr.io", "username": "u"})
        registry = Registry.create(
            {"name": "ghcr", "registry": "ghcr.io", "username": "u", "password": TOKEN}
        )
        self.shipped.image_pull_credential_ids = registry
        with self.assertRaises(AccessError):
            registry.with_user(self.user).read(["password"])
        with self.assertRaises(AccessError):
            self.shipped.with_user(self.user).read(["image_pull_credential_ids"])
        # A user's deploy still pulls with them: the books get them.
        odoo = self._create("code-pull")
        context = odoo.with_user(self.user)._template_context(odoo._odoo_values())
        self.assertIn("ghcr.io", context["secrets"]["registry"]["auths"])

    def test_users_never_read_git_credentials(self):
        credential = self.env["eyrie.git.credential"].create(
            {"name": "acme", "kind": "https", "token": TOKEN}
        )
        self.shipped.git_credential_ids = credential
        with self.assertRaises(AccessError):
            credential.with_user(self.user).read(["token"])
        with self.assertRaises(AccessError):
            self.env["eyrie.git.credential"].with_user(self.user).search([])
        # A manager's view of it holds the token; a user's scope does not.
        self.assertEqual(credential.with_user(self.manager).token, TOKEN)
        scope = self.shipped.with_user(self.user).read(["git_hosts"])
        self.assertNotIn(TOKEN, str(scope))
        with self.assertRaisesMessage(ValidationError, "fill in 'Token'"):
            self.env["eyrie.git.credential"].create({"name": "empty", "kind": "https"})


@tagged("post_install", "-at_install")
class TestPinning(CodeScopeMixin, ShippedScopeMixin, EyrieCase):
    """Each deploy pins every ref to the commit it is at, by a real git
    ls-remote over HTTPS, with the scope's credential."""

    def test_refs_are_pinned_to_the_commits_they_are_at(self):
        shas = self._sample("pin")
        odoo = self._odoo_with_code("pin-me", "pin")
        repositories = odoo._effective_values()["repositories"]
        self.assertEqual(odoo._odoo_pin(repositories)[0]["commit"], shas[V1])
        self.git.push("pin", shas[V2])
        self.assertEqual(odoo._odoo_pin(repositories)[0]["commit"], shas[V2])
        tag = [dict(repositories[0], ref="v1.1")]
        self.assertEqual(odoo._odoo_pin(tag)[0]["commit"], shas[V2])
        # An annotated tag: the commit it tags, not the tag object.
        self.git.tag("pin", "v1.2", shas[V3])
        annotated = [dict(repositories[0], ref="v1.2")]
        self.assertEqual(odoo._odoo_pin(annotated)[0]["commit"], shas[V3])
        commit = [dict(repositories[0], ref=shas[V3])]
        self.assertEqual(odoo._odoo_pin(commit)[0]["commit"], shas[V3])

    def test_an_unknown_ref_or_a_bad_token_says_so_without_the_token(self):
        self._sample("refused")
        odoo = self._odoo_with_code("pin-refused", "refused")
        repository = odoo._effective_values()["repositories"][0]
        with self.assertRaisesMessage(UserError, "has no branch or tag '17.0'"):
            odoo._odoo_pin([dict(repository, ref="17.0")])
        self.credential.token = "wrong-token-5678"
        with self.assertRaises(UserError) as caught:
            odoo._odoo_pin([repository])
        message = str(caught.exception)
        self.assertIn("could not be pinned", message)
        self.assertNotIn("wrong-token-5678", message)
        self.credential.token = TOKEN
        # Without the scope's credential, the private repository is closed.
        with self.assertRaisesMessage(UserError, "could not be pinned"):
            odoo._odoo_pin([dict(repository, credential="")])

    def test_the_deploy_records_a_release_with_the_pinned_commits(self):
        shas = self._sample("release")
        odoo = self._odoo_with_code("release-me", "release")
        odoo.action_deploy()
        job = odoo.job_ids.filtered(lambda j: j.action == "deploy")
        self.assertEqual(job._job_values()["commits"][0]["commit"], shas[V1])
        self.assertFalse(odoo.release_ids, "recorded once the deploy ends")
        self._run_jobs()
        release = odoo.release_ids
        self.assertEqual(len(release), 1)
        self.assertEqual(release.commits[0]["commit"], shas[V1])
        self.assertEqual(release.image, "odoo:18.0")
        self.assertTrue(release.upgrade, "a first deploy installs the modules")
        self.assertEqual(release.job_id, job)
        self.assertEqual(release.outcome, "deployed")


class CodeContainerMixin(OdooContainerMixin):
    """The code's containers run here: the fetch by git, then a Job's
    container by a real Odoo 18.0, with the mounts the Pod gives them."""

    def _code_values(self, odoo):
        values = odoo._odoo_values()
        return odoo._odoo_code_values(values)

    def _mounts(self, name):
        mounts = {
            "/var/lib/odoo": f"{self.root}/{name}/filestore",
            "/eyrie-code": f"{self.root}/{name}/code",
            "/mnt/addons": f"{self.root}/{name}/addons",
            # The image's own addons beside Odoo's (this machine's checkout
            # keeps web and the others out of odoo/addons).
            "/mnt/extra-addons": _machine_addons(),
            "/git-credentials": f"{self.root}/{name}/git-credentials",
            "/dev/termination-log": f"{self.root}/{name}/termination-log",
        }
        for key, folder in mounts.items():
            if key not in ("/dev/termination-log", "/mnt/extra-addons"):
                os.makedirs(folder)
        self.mounts = mounts
        return mounts

    def _fetch(self, rendered, container, mounts):
        """The fetch-addons init container: its script, its Secret's files
        where the Pod mounts them, run by git."""
        self._write_code(rendered, mounts)
        result = self._run_container(
            container, self._env_of(container, rendered), mounts
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        return result

    def _write_code(self, rendered, mounts):
        if not os.listdir(mounts["/eyrie-code"]):
            self._write_scripts(
                rendered["ConfigMap", "odoo-code"], mounts, "/eyrie-code"
            )
        secret = rendered.get(("Secret", "odoo-git"))
        for key, value in (secret or {}).get("data", {}).items():
            path = os.path.join(mounts["/git-credentials"], key)
            with open(path, "wb") as handle:
                handle.write(base64.b64decode(value))

    def _env_of(self, container, rendered, pg=None):
        secrets = {
            name: self._decoded(obj)
            for (kind, name), obj in rendered.items()
            if kind == "Secret"
        }
        env = self._pod_env(container, secrets, pg)
        if "ADDONS_PATH" in env:
            env["ADDONS_PATH"] = self._on_host(env["ADDONS_PATH"], self.mounts)
        return env

    def _manifest_version(self, folder):
        with open(os.path.join(folder, "eyrie_sample", "__manifest__.py")) as f:
            return ast.literal_eval(f.read())["version"]


@tagged("post_install", "-at_install")
class TestCodeForReal(CodeScopeMixin, CodeContainerMixin, ShippedScopeMixin, EyrieCase):
    """The rendered fetch run by git, and the rendered upgrade Job run by a
    real Odoo 18.0: install, upgrade adding a column, a failing upgrade
    rolled back to the database as it was."""

    def test_the_pods_fetch_the_pinned_commit_not_a_later_push(self):
        shas = self._sample("fetch")
        odoo = self._odoo_with_code("fetch-me", "fetch")
        odoo._ensure_credentials(("admin_password", "db_password"))
        values = self._code_values(odoo)
        self.assertEqual(values["commits"][0]["commit"], shas[V1])
        # Pushed after the deploy pinned its commit: the pods keep the pin.
        self.git.push("fetch", shas[V2])
        rendered = self._rendered(odoo, "deploy", values)
        pod = rendered["Deployment", "odoo"]["spec"]["template"]["spec"]
        fetch = pod["initContainers"][0]
        self.assertEqual(fetch["name"], "fetch-addons")
        self.assertIn(
            {"name": "ADDONS_PATH", "value": "/mnt/addons/0,/mnt/extra-addons"},
            pod["containers"][0]["env"],
        )
        mounts = self._mounts("fetch")
        self._fetch(rendered, fetch, mounts)
        checkout = os.path.join(mounts["/mnt/addons"], "0")
        self.assertEqual(self._manifest_version(checkout), V1)
        # The token reached git through the Secret, never the arguments.
        self.assertNotIn(TOKEN, json.dumps(fetch))
        self.assertNotIn(TOKEN, json.dumps(rendered["ConfigMap", "odoo-code"]))

    def test_install_upgrade_and_a_failed_upgrade_rolled_back_for_real(self):
        shas = self._sample("upgrade")
        odoo = self._odoo_with_code("upgrade-me", "upgrade")
        odoo._ensure_credentials(("admin_password", "db_password"))
        password = odoo.sudo().credentials["db_password"]
        db = odoo._odoo_values()["db_name"]

        with PrivatePostgres() as pg:
            pg.create_role("odoo", password)

            def run_upgrade(name):
                values = self._code_values(odoo)
                rendered = self._rendered(odoo, "deploy", values)
                pod = rendered["Job", "odoo-upgrade"]["spec"]["template"]["spec"]
                mounts = self._mounts(name)
                self._fetch(rendered, pod["initContainers"][0], mounts)
                container = pod["containers"][0]
                env = self._env_of(container, rendered, pg)
                env["ODOO_RC"] = self._image_config(
                    free_port(), mounts["/var/lib/odoo"], f"{name}.conf"
                )
                return self._run_container(container, env, mounts), mounts

            def query(text):
                return pg.execute(text, user="odoo", password=password, dbname=db)

            def version():
                return query(
                    "SELECT latest_version FROM ir_module_module "
                    "WHERE name = 'eyrie_sample'"
                )[0][0]

            def columns():
                return {
                    row[0]
                    for row in query(
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_name = 'eyrie_sample'"
                    )
                }

            # First deploy: a new database, base and the module installed.
            first, _mounts = run_upgrade("first")
            self.assertEqual(first.returncode, 0, first.stdout[-3000:])
            self.assertIn("EYRIE-INSTALLED: base,eyrie_sample", first.stdout)
            self.assertEqual(version(), V1)
            self.assertNotIn("note", columns())
            # Production gets no demo data ('demo' is a development build's).
            demo_user = (
                "SELECT count(*) FROM ir_model_data "
                "WHERE module = 'base' AND name = 'user_demo'"
            )
            self.assertEqual(query(demo_user), [(0,)])
            query("INSERT INTO eyrie_sample (name) VALUES ('kept')")

            # A push of 18.0.1.1.0: the upgrade adds its column.
            self.git.push("upgrade", shas[V2])
            upgraded, _mounts = run_upgrade("second")
            self.assertEqual(upgraded.returncode, 0, upgraded.stdout[-3000:])
            self.assertIn("EYRIE-UPGRADED: eyrie_sample", upgraded.stdout)
            self.assertEqual(version(), V2)
            self.assertIn("note", columns())

            # Nothing changed since: nothing to do, no dump.
            again, _mounts = run_upgrade("again")
            self.assertEqual(again.returncode, 0, again.stdout[-3000:])
            self.assertIn("every module is up to date", again.stdout)

            # 18.0.1.2.0's migration fails: the database is as before.
            query("UPDATE eyrie_sample SET note = 'before the failed upgrade'")
            self.git.push("upgrade", shas[V3])
            failed, mounts = run_upgrade("third")
            self.assertEqual(failed.returncode, 1, failed.stdout[-3000:])
            self.assertIn(
                "EYRIE-UPGRADE-FAILED: Exception: sample upgrade refused: the data "
                "is broken",
                failed.stdout,
            )
            self.assertIn("restored the database as it was", failed.stdout)
            self.assertEqual(version(), V2)
            self.assertEqual(
                query("SELECT name, note FROM eyrie_sample"),
                [("kept", "before the failed upgrade")],
            )
            with open(mounts["/dev/termination-log"]) as handle:
                self.assertIn("sample upgrade refused", handle.read())
            # What Eyrie reads of it.
            found = odoo.env["eyrie.release"]._upgrade_fields(upgraded.stdout)
            self.assertEqual(found["modules_upgraded"], "eyrie_sample")


@tagged("post_install", "-at_install")
class TestCodeLifecycle(
    CodeScopeMixin, OperatorsMixin, ShippedScopeMixin, KubernetesCase
):
    """Deploys that change code on the emulated cluster: the upgrade Job
    before the new code serves, and a failed upgrade that goes back."""

    pods = itertools.count()

    def _upgrade_pod(self, odoo, log):
        """The upgrade Job's pod as the Job controller makes it, with what
        its container printed; the last one's gone (the garbage collector
        deletes a deleted Job's pods)."""
        job_pod(
            self.emulator,
            odoo.namespace,
            "odoo-upgrade",
            "upgrade",
            log,
            f"odoo-upgrade-{next(self.pods)}",
        )

    def _latest(self, odoo):
        return odoo._odoo_releases()[0]

    def _workload_commit(self, odoo):
        workload = self.emulator.get("apps/v1", "Deployment", "odoo", odoo.namespace)
        fetch = workload["spec"]["template"]["spec"]["initContainers"][0]
        self.assertEqual(fetch["name"], "fetch-addons")
        return fetch["args"][2]

    def test_an_update_upgrades_and_a_broken_version_goes_back_by_itself(self):
        shas = self._sample("life")
        odoo = self._odoo_with_code("life", "life")
        self._run(odoo, "deploy")
        self.assertEqual(odoo.state, "deploy")
        self.assertEqual(self._workload_commit(odoo), shas[V1])
        self.assertIn(shas[V1][:12], odoo.pinned_commits)
        self.assertEqual(odoo.repository_ids.pinned_commit, shas[V1])

        # Nothing changed: no upgrade Job, the pods keep running, and the
        # release that serves is still the first one.
        first = self._latest(odoo)
        odoo.action_deploy()
        deploy = self._job(odoo, "deploy")
        self.assertFalse(deploy._job_values()["upgrade"])
        self._settle(between_rounds=self._play_operators)
        self.assertEqual(deploy.state, "done")
        self.assertEqual(odoo.release_ids, first)

        # A push: the update stops the old pods and upgrades first.
        self.git.push("life", shas[V2])
        odoo.action_deploy()
        self._upgrade_pod(odoo, "upgrading\nEYRIE-UPGRADED: eyrie_sample\n")
        self._settle(between_rounds=self._play_operators)
        release = self._latest(odoo)
        self.assertTrue(release.upgrade)
        self.assertEqual(release.outcome, "deployed")
        self.assertEqual(release.modules_upgraded, "eyrie_sample")
        self.assertEqual(self._workload_commit(odoo), shas[V2])
        self.assertEqual(odoo.last_upgrade, "upgraded eyrie_sample")

        # A broken version: the Job fails (and restored the database); the
        # deployment goes back to the commit that served, and says why.
        self.git.push("life", shas[V3])
        odoo.action_deploy()

        def fail_the_upgrade(_round):
            job = self.emulator.get("batch/v1", "Job", "odoo-upgrade", odoo.namespace)
            if (
                job
                and job["spec"]["template"]["spec"]["initContainers"][0]["args"][2]
                == shas[V3]
                and not (job.get("status") or {}).get("failed")
            ):
                self.emulator.set_status(
                    "batch/v1", "Job", "odoo-upgrade", JOB_FAILED, odoo.namespace
                )
            else:
                self.emulator.play_operators()

        self._upgrade_pod(
            odoo,
            "EYRIE-PLAN-UPGRADE: eyrie_sample\nEYRIE-PLAN-INSTALL: \n"
            "Traceback (most recent call last):\n  File x\n"
            "Exception: sample upgrade refused: the data is broken\n"
            "EYRIE-UPGRADE-FAILED: Exception: sample upgrade refused: the data "
            "is broken\n",
        )
        self._settle(between_rounds=fail_the_upgrade)
        failed, rollback = (
            odoo.release_ids.filtered(lambda r: r.commits[0]["commit"] == shas[V3]),
            self._latest(odoo),
        )
        self.assertEqual(failed.outcome, "rolled_back")
        self.assertEqual(rollback.rollback_of_id, failed)
        self.assertEqual(rollback.outcome, "deployed")
        self.assertEqual(self._workload_commit(odoo), shas[V2])
        self.assertEqual(odoo.state, "deploy")
        expected = (
            "upgrade of eyrie_sample failed: Exception: sample upgrade refused: "
            f"the data is broken; back on {shas[V2][:12]}"
        )
        self.assertEqual(odoo.error_message, expected)
        self.assertIn(expected, self._messages(odoo))

        # The release that served can be deployed again, as it was.
        first.action_redeploy()
        self._settle(between_rounds=self._play_operators)
        redeployed = self._latest(odoo)
        self.assertEqual(redeployed.commits[0]["commit"], shas[V1])
        self.assertTrue(redeployed.upgrade, "older code than the one serving")
        # A release that did not serve cannot be deployed again.
        with self.assertRaisesMessage(UserError, "did not deploy"):
            failed.action_redeploy()


@tagged("post_install", "-at_install")
class TestCodeXmlRpc(TwoUsersRpcCase):
    """A plain user adds a repository and modules over XML-RPC, deploys,
    pushes, updates and reads the releases; another user cannot redeploy
    them, a user of another company cannot even see them."""

    LOGIN = "eyrie_code_user"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.git = GitPeer()
        cls.git.__enter__()
        cls.addClassCleanup(cls.git.__exit__)
        cls.credential = cls.env["eyrie.git.credential"].create(
            {"name": "ca-only", "kind": "https", "token": "unused-token"}
            | {"ca_certificate": cls.git.ca_pem}
        )
        cls.scope.write(
            {
                "git_hosts": "localhost",
                "git_credential_ids": [(6, 0, cls.credential.ids)],
            }
        )

    def test_a_user_deploys_their_code_and_reads_its_releases(self):
        shas = self.git.create_sample("rpc")
        values = {
            "repositories": [
                {"url": self.git.url("rpc"), "ref": "18.0", "credential": "ca-only"}
            ],
            "modules": ["eyrie_sample"],
        }
        with self.assertRaisesRegex(Exception, "does not allow"):
            self.rpc(
                "eyrie.deployment",
                "create",
                {
                    "name": "rpc-code-refused",
                    "deployment_type": "odoo",
                    "scope_id": self.scope.id,
                    "values": json.dumps(
                        {"repositories": [{"url": "https://x.org/a.git", "ref": "1"}]}
                    ),
                },
            )
        shop = self.rpc(
            "eyrie.deployment",
            "create",
            {
                "name": "rpc-code",
                "deployment_type": "odoo",
                "scope_id": self.scope.id,
                "values": json.dumps(values),
            },
        )
        self.rpc("eyrie.deployment", "action_deploy", [shop])
        self._settle_played()
        self.git.push("rpc", shas[V2])
        self.rpc("eyrie.deployment", "action_deploy", [shop])
        self._settle_played()
        releases = self.rpc(
            "eyrie.release",
            "search_read",
            [("deployment_id", "=", shop)],
            ["commits", "outcome", "upgrade", "can_redeploy"],
            order="id",
        )
        self.assertEqual(
            [(r["commits"][0]["commit"], r["outcome"]) for r in releases],
            [(shas[V1], "deployed"), (shas[V2], "deployed")],
        )
        self.assertTrue(all(r["upgrade"] for r in releases))
        self.assertTrue(releases[0]["can_redeploy"])
        form = self.rpc("eyrie.deployment", "read", [shop], ["pinned_commits"])[0]
        self.assertIn(shas[V2][:12], form["pinned_commits"])
        # Releases are records of the system: nobody writes them over RPC.
        with self.assertRaisesRegex(Exception, "not allowed to modify"):
            self.rpc(
                "eyrie.release", "write", [releases[0]["id"]], {"outcome": "failed"}
            )
        # Another user of the company reads them, without a Redeploy.
        other = self.xmlrpc_object.execute_kw(
            get_db_name(), self.other.id, self.other.login, "eyrie.release",
            "read", [[releases[0]["id"]], ["can_redeploy"]],
        )  # fmt: skip
        self.assertFalse(other[0]["can_redeploy"])
        with self.assertRaisesRegex(Exception, "You cannot deploy deployment rpc-code"):
            self.xmlrpc_object.execute_kw(
                get_db_name(), self.other.id, self.other.login, "eyrie.release",
                "action_redeploy", [[releases[0]["id"]]],
            )  # fmt: skip
        # A user of another company sees none of them.
        company = self.env["res.company"].create({"name": "Other Co (code)"})
        outsider = new_test_user(
            self.env,
            login="eyrie_code_outsider",
            groups="eyrie_deployment.group_eyrie_user",
            company_id=company.id,
            company_ids=[(6, 0, company.ids)],
        )
        found = self.xmlrpc_object.execute_kw(
            get_db_name(), outsider.id, outsider.login, "eyrie.release",
            "search_count", [[("deployment_id", "=", shop)]],
        )  # fmt: skip
        self.assertEqual(found, 0)
        # The owner redeploys the first release, as it was.
        self.rpc("eyrie.release", "action_redeploy", [releases[0]["id"]])
        self._settle_played()
        latest = self.rpc(
            "eyrie.release",
            "search_read",
            [("deployment_id", "=", shop)],
            ["commits"],
            order="id desc",
            limit=1,
        )[0]
        self.assertEqual(latest["commits"][0]["commit"], shas[V1])


@tagged("post_install", "-at_install")
class TestUpgradeOnCopy(
    CodeScopeMixin, OperatorsMixin, ShippedScopeMixin, KubernetesCase
):
    """The code of the values tried on a neutralized copy first: the outcome
    on the source, the copy dropped or kept, the source unchanged."""

    def _play_upgrade(self, copy_name, log, fail=False):
        """Between rounds: the copy's upgrade Job ran and printed ``log``
        (its pod, as the Job controller makes it), and failed if ``fail``;
        the other controllers played."""
        from kubernetes import client

        def play(_round):
            copy = self.env["eyrie.deployment"].search([("name", "=", copy_name)])
            job = copy and self.emulator.get(
                "batch/v1", "Job", "odoo-upgrade", copy.namespace
            )
            if job and not job.get("status"):
                client.CoreV1Api(self.emulator.api_client()).create_namespaced_pod(
                    copy.namespace,
                    {
                        "metadata": {
                            "name": "odoo-upgrade-copy",
                            "labels": {"job-name": "odoo-upgrade"},
                        },
                        "spec": {"containers": [{"name": "upgrade", "image": "o"}]},
                    },
                )
                self.emulator.set_logs(
                    copy.namespace, "odoo-upgrade-copy", "upgrade", log
                )
                if fail:
                    self.emulator.set_status(
                        "batch/v1", "Job", "odoo-upgrade", JOB_FAILED, copy.namespace
                    )
                    return
            self.emulator.play_operators()

        return play

    def test_a_good_upgrade_is_reported_and_its_copy_dropped(self):
        shas = self._sample("copy-good")
        source = self._odoo_with_code("copy-good", "copy-good")
        self._run(source, "deploy")
        releases = source.release_ids
        self.git.push("copy-good", shas[V2])
        action = source.action_upgrade_on_copy()
        copy = self.env["eyrie.deployment"].browse(action["res_id"])
        self.assertTrue(copy.upgrade_copy)
        self.assertTrue(copy.clone_neutralize)
        deploy = copy.job_ids.filtered(lambda j: j.action == "deploy")
        self.assertEqual(deploy._job_values()["commits"][0]["commit"], shas[V2])
        self._settle(
            between_rounds=self._play_upgrade(
                copy.name,
                "EYRIE-PLAN-UPGRADE: eyrie_sample\nEYRIE-UPGRADED: eyrie_sample\n",
            )
        )
        self.assertFalse(copy.exists(), "the copy was not dropped")
        self.assertIn(
            f"Upgrade on a copy: the code of {shas[V2][:12]} deployed on a "
            "neutralized copy of the data: upgraded eyrie_sample.",
            self._messages(source),
        )
        # The source is as it was: same code, no new release.
        self.assertEqual(source.release_ids, releases)
        workload = self.emulator.get("apps/v1", "Deployment", "odoo", source.namespace)
        fetch = workload["spec"]["template"]["spec"]["initContainers"][0]
        self.assertEqual(fetch["args"][2], shas[V1])

    def test_a_failed_upgrade_is_reported_and_its_copy_kept(self):
        shas = self._sample("copy-bad")
        source = self._odoo_with_code("copy-bad", "copy-bad")
        self._run(source, "deploy")
        self.git.push("copy-bad", shas[V3])
        copy = self.env["eyrie.deployment"].browse(
            source.action_upgrade_on_copy(keep=True)["res_id"]
        )
        self._settle(
            between_rounds=self._play_upgrade(
                copy.name,
                "EYRIE-PLAN-UPGRADE: eyrie_sample\nEYRIE-UPGRADE-FAILED: Exception: "
                "sample upgrade refused: the data is broken\n",
                fail=True,
            )
        )
        self.assertTrue(copy.exists())
        self.assertEqual(copy.state, "error")
        messages = self._messages(source)
        self.assertIn(
            f"Upgrade on a copy: the code of {shas[V3][:12]} failed on a neutralized "
            "copy of the data: upgrade of eyrie_sample failed: Exception: sample "
            "upgrade refused: the data is broken",
            messages,
        )
        self.assertIn(f"kept as {copy.name}", messages)
        self.assertEqual(source.state, "deploy")
        self.assertFalse(source.error_message)
