"""Tests whose transactions run concurrently (job runners, two servers, a
cron racing a user) see committed data only: they commit what they make and
remove it afterwards with ``remove_committed``."""


def make_dry_run_scope(env, name, domain):
    """A dry-run cluster, a book of one ConfigMap that initializes and
    deploys, and a scope of ``domain`` on them: (cluster, book, scope)."""
    cluster = env["eyrie.cluster"].create({"name": name, "dry_run": True})
    step = {
        "name": "cm",
        "kind": "apply",
        "template": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
    }
    book = env["eyrie.deployment.book"].create(
        {"name": name, "step_ids": [(0, 0, step)]}
    )
    scope = env["eyrie.scope"].create(
        {
            "name": name,
            "domain": domain,
            "cluster_id": cluster.id,
            "deployment_initialize_book_id": book.id,
            "deployment_deploy_book_id": book.id,
        }
    )
    return cluster, book, scope


def queue_jobs_now(cr):
    """The last queue job's id: the ones after it are the test's."""
    cr.execute("SELECT COALESCE(max(id), 0) FROM queue_job")
    return cr.fetchone()[0]


def remove_committed(
    cr, deployment_ids, scope_ids, book_ids, cluster_ids, queue_jobs_before
):
    """Delete what a test committed: its deployments with their jobs,
    messages and followers, its scopes, books and clusters with their
    queue_job channels, and the queue jobs made since ``queue_jobs_before``."""
    deployments = tuple(deployment_ids) or (0,)
    cr.execute("DELETE FROM eyrie_job WHERE deployment_id IN %s", [deployments])
    for model, ids in (
        ("eyrie.deployment", deployments),
        ("eyrie.scope", tuple(scope_ids) or (0,)),
        ("eyrie.cluster", tuple(cluster_ids) or (0,)),
    ):
        cr.execute(
            "DELETE FROM mail_message WHERE model = %s AND res_id IN %s", [model, ids]
        )
        cr.execute(
            "DELETE FROM mail_followers WHERE res_model = %s AND res_id IN %s",
            [model, ids],
        )
    # A shared database's Odoo deployments point at it.
    cr.execute(
        "UPDATE eyrie_deployment SET database_deployment_id = NULL WHERE id IN %s",
        [deployments],
    )
    cr.execute("DELETE FROM eyrie_deployment WHERE id IN %s", [deployments])
    cr.execute("DELETE FROM eyrie_scope WHERE id IN %s", [tuple(scope_ids) or (0,)])
    cr.execute(
        "DELETE FROM eyrie_deployment_book WHERE id IN %s", [tuple(book_ids) or (0,)]
    )
    cr.execute("DELETE FROM eyrie_cluster WHERE id IN %s", [tuple(cluster_ids) or (0,)])
    cr.execute("DELETE FROM queue_job WHERE id > %s", [queue_jobs_before])
    cr.execute(
        "DELETE FROM queue_job_channel WHERE name IN %s",
        [tuple(f"cluster_{cluster_id}" for cluster_id in cluster_ids) or ("",)],
    )
