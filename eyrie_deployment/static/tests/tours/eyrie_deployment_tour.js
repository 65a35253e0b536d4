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

/**
 * A plain Eyrie user's first deployment, from the list's New: the form
 * opens with the scope defaulted, computes the type's values once the
 * type is chosen, then the user deploys, pauses and resumes it.
 */
registry.category("web_tour.tours").add("eyrie_deployment_new_tour", {
    url: "/odoo/action-eyrie_deployment.eyrie_deployment_action",
    steps: () => [
        {
            content: "Click New in the deployments list",
            trigger: ".o_list_view .o_list_button_add",
            run: "click",
        },
        {
            content: "The form opens, its scope defaulted to the user's only scope",
            trigger: `${FORM} .o_field_widget[name='scope_id'] input:value(Tour scope)`,
        },
        {
            content: "Name the deployment",
            trigger: `${FORM} .o_field_widget[name='name'] input`,
            run: "edit tour-new",
        },
        {
            content: "Choose the type Odoo",
            trigger: `${FORM} .o_field_widget[name='deployment_type'] select`,
            run: 'select "odoo"',
        },
        {
            content: "The effective values are the Odoo type's",
            trigger: `${FORM} .o_field_widget[name='effective_values']:contains(odoo:18.0)`,
        },
        {
            content: "Save",
            trigger: `${FORM} .o_form_button_save`,
            run: "click",
        },
        {
            content: "Saved: a draft",
            trigger: currentPhase("draft", "Draft"),
        },
        {
            content: "Deploy it",
            trigger: `${FORM} .o_statusbar_buttons button[name='action_deploy']:contains(Deploy)`,
            run: "click",
        },
        {
            content: "Deployed, without a reload by hand",
            trigger: currentPhase("deploy", "Deploy"),
            timeout: JOB_TIMEOUT,
        },
        {
            content: "Pause it",
            trigger: `${FORM} .o_statusbar_buttons button[name='action_pause']:contains(Pause)`,
            run: "click",
        },
        {
            content: "Paused",
            trigger: currentPhase("pause", "Pause"),
            timeout: JOB_TIMEOUT,
        },
        {
            content: "Resume it",
            trigger: `${FORM} .o_statusbar_buttons button[name='action_deploy']:contains(Resume)`,
            run: "click",
        },
        {
            content: "Deployed again",
            trigger: currentPhase("deploy", "Deploy"),
            timeout: JOB_TIMEOUT,
        },
        {
            content: "Its own deployment offers Pause again",
            trigger: `${FORM} .o_statusbar_buttons button[name='action_pause']:contains(Pause)`,
        },
        {
            content: "Back to the list",
            trigger: ".o_breadcrumb .o_back_button a, .o_breadcrumb li.breadcrumb-item a:contains(Deployments)",
            run: "click",
        },
        {
            content: "Open the admin's draft deployment tour-odoo",
            trigger: ".o_list_view .o_data_row td.o_data_cell[name='name']:contains(tour-odoo)",
            run: "click",
        },
        {
            content: "Someone else's deployment: read-only, and no Deploy, Logs or Drop",
            trigger: `${FORM}:has(.o_field_widget[name='name'].o_readonly_modifier:contains(tour-odoo)):not(:has(.o_statusbar_buttons button[name='action_deploy'])):not(:has(.o_statusbar_buttons button[name='action_drop']))`,
        },
    ],
});
