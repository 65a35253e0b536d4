/** @odoo-module **/

/**
 * Deploy, then pause, the Odoo deployment "tour-odoo" from its form, then
 * read a job's log. Its test (tests/test_tour.py) runs the job runner
 * meanwhile. Nobody reloads the page: the deployment form follows each job
 * by itself (the eyrie_job_progress widget).
 */

import { registry } from "@web/core/registry";

const FORM = ".o_form_view";
const JOB_ALERT = `${FORM} .alert-info .o_field_widget[name='active_job_id'] a:contains(tour-odoo)`;
// The job runner of the test starts a job about a second after it is queued;
// the form polls every 2 seconds.
const JOB_TIMEOUT = 20000;

function currentPhase(value, label) {
    return `${FORM} .o_statusbar_status button.o_arrow_button_current[data-value='${value}']:contains(${label})`;
}

registry.category("web_tour.tours").add("eyrie_deployment_tour", {
    url: "/odoo/action-eyrie_deployment.eyrie_deployment_action",
    steps: () => [
        {
            content: "Open the deployment tour-odoo from the deployments list",
            trigger: ".o_list_view .o_data_row td.o_data_cell[name='name']:contains(tour-odoo)",
            run: "click",
        },
        {
            content: "The deployment is a draft",
            trigger: currentPhase("draft", "Draft"),
        },
        {
            content: "Deploy it",
            trigger: `${FORM} .o_statusbar_buttons button[name='action_deploy']:contains(Deploy)`,
            run: "click",
        },
        {
            content: "The form says that a job is in progress and links it",
            trigger: JOB_ALERT,
        },
        {
            content: "Without any reload by hand, the form shows the deployment deployed",
            trigger: currentPhase("deploy", "Deploy"),
            timeout: JOB_TIMEOUT,
        },
        {
            content: "Pause it once no job is in progress",
            trigger: `${FORM} .o_statusbar_buttons button[name='action_pause']:contains(Pause)`,
            run: "click",
        },
        {
            content: "The form says that the pause job is in progress",
            trigger: JOB_ALERT,
        },
        {
            content: "The form shows the deployment paused",
            trigger: currentPhase("pause", "Pause"),
            timeout: JOB_TIMEOUT,
        },
        {
            content: "The deployment offers Resume now",
            trigger: `${FORM} .o_statusbar_buttons button[name='action_deploy']:contains(Resume)`,
        },
        {
            content: "Open its jobs: initialize, deploy and pause",
            trigger: `${FORM} button.oe_stat_button[name='action_view_jobs']:contains(3)`,
            run: "click",
        },
        {
            content: "Open the initialize job",
            trigger:
                ".o_list_view .o_data_row:has(td.o_data_cell[name='action']:contains(Initialize)) td.o_data_cell[name='deployment_name']",
            run: "click",
        },
        {
            content: "The job is done",
            trigger: currentPhase("done", "Done"),
        },
        {
            content: "Its log shows what the dry-run cluster would apply",
            trigger: `${FORM} .o_field_widget[name='log']:contains(would apply Namespace tour-odoo)`,
        },
    ],
});
