/** @odoo-module **/

import { onWillDestroy, onWillUnmount, useComponent } from "@odoo/owl";
import { browser } from "@web/core/browser/browser";
import { _t } from "@web/core/l10n/translation";
import { ConnectionLostError } from "@web/core/network/rpc";
import { registry } from "@web/core/registry";
import { useService } from "@web/core/utils/hooks";
import { FetchRecordError } from "@web/model/relational_model/errors";
import { useRecordObserver } from "@web/model/relational_model/utils";
import { Many2OneField, many2OneField } from "@web/views/fields/many2one/many2one_field";

/** Milliseconds between two reloads of a record whose job is in progress. */
export const JOB_PROGRESS_DELAY = 2000;

/**
 * True when the user is typing in a field: its value may not be in the
 * record yet (fields commit on change), and a reload would disturb them.
 */
function isUserTyping() {
    const element = document.activeElement;
    if (!element || !element.closest(".o_field_widget")) {
        return false;
    }
    return element.isContentEditable || element.matches("input, textarea, select");
}

/** The id of a many2one as the record holds it ([id, name]) or as read. */
function plainValue(value) {
    return Array.isArray(value) ? value[0] : value || false;
}

/**
 * Follows the record of the calling field component every `delay`
 * milliseconds while the field (the record's active job) is set, so that the
 * view shows the job's outcome without a manual refresh.
 *
 * - each tick reads only the fields that move when a job starts or ends (the
 *   field itself, and the record's `state` and `runner_missing` where the
 *   view has them), and reloads the whole record only when one of them
 *   changed: a form with many jobs, backups and messages is not read again
 *   every few seconds for nothing;
 * - starts when the field gets a value, stops as soon as it is empty;
 * - never reloads a dirty record, nor while the user is typing in a field;
 *   it tries again at the next tick;
 * - one tick at a time: the next one is planned once the previous ended;
 * - stops on unmount;
 * - when the record is gone (a drop job deletes its deployment), it says so
 *   and leaves the form.
 */
export function useJobProgress({ delay = JOB_PROGRESS_DELAY } = {}) {
    const component = useComponent();
    const notification = useService("notification");
    const orm = useService("orm");
    let timeout = null;
    let alive = true;

    const hasActiveJob = (record) => Boolean(record.data[component.props.name]);
    const mayReload = (record) => alive && !record.dirty && !isUserTyping();

    /** Whether the server's record differs in a watched field (or is gone). */
    async function changedOnServer(record) {
        const watched = [component.props.name, "state", "runner_missing"].filter(
            (name) => name in record.fields
        );
        // load=false: a many2one as its id alone, without its name.
        const [values] = await orm.read(record.resModel, [record.resId], watched, {
            load: false,
        });
        return (
            !values ||
            watched.some((name) => plainValue(values[name]) !== plainValue(record.data[name]))
        );
    }

    function stop() {
        if (timeout !== null) {
            browser.clearTimeout(timeout);
            timeout = null;
        }
    }

    function schedule() {
        if (alive && timeout === null) {
            timeout = browser.setTimeout(poll, delay);
        }
    }

    async function poll() {
        timeout = null;
        const record = component.props.record;
        if (!alive || !hasActiveJob(record)) {
            return;
        }
        if (mayReload(record)) {
            try {
                if ((await changedOnServer(record)) && mayReload(record)) {
                    await record.load();
                }
            } catch (error) {
                if (error instanceof FetchRecordError) {
                    recordGone(record);
                    return;
                }
                if (!(error instanceof ConnectionLostError)) {
                    throw error;
                }
                // The server is unreachable for now: try again at the next tick.
            }
        }
        if (hasActiveJob(component.props.record)) {
            schedule();
        }
    }

    function recordGone(record) {
        alive = false;
        notification.add(_t("This deployment no longer exists: its drop job removed it."), {
            type: "info",
        });
        if (record === record.model.root && !component.env.inDialog) {
            component.env.config?.historyBack?.();
        }
    }

    // Called at start, then whenever the field's value changes (or the
    // component shows another record): polls exactly while a job is active.
    useRecordObserver((record) => (hasActiveJob(record) ? schedule() : stop()));
    const end = () => {
        alive = false;
        stop();
    };
    onWillUnmount(end);
    onWillDestroy(end);
}

/**
 * The many2one of a record's active job (pending or running), shown as
 * usual, that keeps the record up to date while the job runs.
 */
export class JobProgressField extends Many2OneField {
    setup() {
        super.setup();
        useJobProgress();
    }
}

export const jobProgressField = {
    ...many2OneField,
    component: JobProgressField,
    displayName: _t("Job in Progress (live)"),
};

registry.category("fields").add("eyrie_job_progress", jobProgressField);
