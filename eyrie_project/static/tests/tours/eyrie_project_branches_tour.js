/** @odoo-module **/

/**
 * A project member opens the project "Tour Shop", its Branches, and drags
 * the development branch "feature-tour" into the Staging column; the card
 * lands there. Its test
 * (tests/test_tour.py) checks the builds afterwards.
 */

import { registry } from "@web/core/registry";

const KANBAN = ".o_kanban_view";
const column = (title) => `${KANBAN} .o_kanban_group:has(.o_column_title:contains(${title}))`;

registry.category("web_tour.tours").add("eyrie_project_branches_tour", {
    url: "/odoo/action-eyrie_project.eyrie_project_action",
    steps: () => [
        {
            content: "Open the project from the list",
            trigger: ".o_list_view .o_data_row td.o_data_cell[name='name']:contains(Tour Shop)",
            run: "click",
        },
        {
            content: "Open its branches",
            trigger: ".o_form_view button[name='action_view_branches']",
            run: "click",
        },
        {
            content: "The production branch is in the Production column",
            trigger: `${column("Production")} .o_kanban_record:contains(main)`,
        },
        {
            content: "The development build shows its commit and its failing tests",
            trigger: `${column("Development")} .o_kanban_record:contains(feature-tour):contains(Failed)`,
        },
        {
            content: "Drag it to Staging",
            trigger: `${column("Development")} .o_kanban_record:contains(feature-tour)`,
            async run(helpers) {
                // Into the column's body, below its title.
                await helpers.drag_and_drop(column("Staging"), {
                    position: { top: 80, left: 40 },
                    relative: true,
                });
            },
        },
        {
            content: "The card is in the Staging column, no error shown",
            trigger: `${column("Staging")} .o_kanban_record:contains(feature-tour)`,
        },
        {
            content: "The Development column is empty",
            trigger: `${column("Development")}:not(:has(.o_kanban_record))`,
        },
    ],
});
