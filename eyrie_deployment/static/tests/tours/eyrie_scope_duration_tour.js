/** @odoo-module **/

/**
 * The scope "Duration scope" (tests/test_timers.py): its timers read as
 * durations in the list and the form, and its pause timer is entered as a
 * number and a unit.
 */

import { registry } from "@web/core/registry";

const ROW = ".o_list_view .o_data_row:has(td.o_data_cell[name='name']:contains(Duration scope))";
const FORM = ".o_form_view";

function durationInput(name, form = FORM) {
    return `${form} .o_field_widget[name='${name}'] input.o_eyrie_duration_amount`;
}

function durationUnit(name) {
    return `${FORM} .o_field_widget[name='${name}'] select.o_eyrie_duration_unit`;
}

registry.category("web_tour.tours").add("eyrie_scope_duration_tour", {
    url: "/odoo/action-eyrie_deployment.eyrie_scope_action",
    steps: () => [
        {
            content: "The list reads the pause timer as minutes",
            trigger: `${ROW} td[name='deployment_pause_after_seconds']:contains(10 minutes)`,
        },
        {
            content: "A drop timer of 0 reads 'Never'",
            trigger: `${ROW} td[name='deployment_drop_after_seconds']:contains(Never)`,
        },
        {
            content: "Open the scope",
            trigger: `${ROW} td.o_data_cell[name='name']`,
            run: "click",
        },
        {
            content: "Keep Awake is entered as 4 hours",
            trigger: `${durationInput("keep_awake_seconds")}:value(4)`,
        },
        {
            content: "... in hours",
            trigger: `${durationUnit("keep_awake_seconds")}:has(option[value='hours']:selected)`,
        },
        {
            content: "Without Allow Drop, the drop timer is read only: Never",
            trigger: `${FORM} .o_field_widget[name='deployment_drop_after_seconds'] span:contains(Never)`,
        },
        {
            content: "The pause timer is entered as 10 minutes",
            trigger: `${durationInput("deployment_pause_after_seconds")}:value(10)`,
        },
        {
            content: "Type 2",
            trigger: durationInput("deployment_pause_after_seconds"),
            run: "edit 2",
        },
        {
            content: "... hours",
            trigger: durationUnit("deployment_pause_after_seconds"),
            run: "select hours",
        },
        {
            content: "Save",
            trigger: `${FORM} .o_form_button_save`,
            run: "click",
        },
        {
            content: "Saved: 2 hours",
            trigger: `${durationInput("deployment_pause_after_seconds", ".o_form_renderer.o_form_saved")}:value(2)`,
        },
        {
            content: "Back to the list",
            trigger: ".o_breadcrumb .o_back_button",
            run: "click",
        },
        {
            content: "The list reads the new pause timer",
            trigger: `${ROW} td[name='deployment_pause_after_seconds']:contains(2 hours)`,
        },
    ],
});

/**
 * Keep Awake on the deployment "tour-awake" (tests/test_timers.py): the
 * browser says what it did, and the form shows the new times at once.
 */
registry.category("web_tour.tours").add("eyrie_keep_awake_tour", {
    steps: () => [
        {
            content: "The pause timer runs",
            trigger: `${FORM} .o_field_widget[name='timer_summary']:contains(pauses in 10 min)`,
        },
        {
            content: "Keep it awake",
            trigger: `${FORM} .o_statusbar_buttons button[name='action_keep_awake']`,
            run: "click",
        },
        {
            content: "A notification gives the new times",
            trigger: ".o_notification:contains(tour-awake kept awake: pauses)",
        },
        {
            content: "The form shows them without a reload by hand",
            trigger: `${FORM} .o_field_widget[name='timer_summary']:contains(pauses in 4 h)`,
        },
    ],
});
