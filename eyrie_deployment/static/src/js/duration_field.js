/** @odoo-module **/

import { Component, useState } from "@odoo/owl";
import { _t } from "@web/core/l10n/translation";
import { registry } from "@web/core/registry";
import { formatFloat, formatInteger } from "@web/views/fields/formatters";
import { useInputField } from "@web/views/fields/input_field_hook";
import { useNumpadDecimal } from "@web/views/fields/numpad_decimal_hook";
import { parseFloat } from "@web/views/fields/parsers";
import { standardFieldProps } from "@web/views/fields/standard_field_props";

/**
 * The units a duration is entered and shown in, largest first. `text` says a
 * whole number of them for people ("1 hour", "4 hours").
 */
export const DURATION_UNITS = [
    {
        name: "days",
        seconds: 86400,
        label: () => _t("days"),
        text: (count) => (count === 1 ? _t("1 day") : _t("%s days", formatInteger(count))),
    },
    {
        name: "hours",
        seconds: 3600,
        label: () => _t("hours"),
        text: (count) => (count === 1 ? _t("1 hour") : _t("%s hours", formatInteger(count))),
    },
    {
        name: "minutes",
        seconds: 60,
        label: () => _t("minutes"),
        text: (count) =>
            count === 1 ? _t("1 minute") : _t("%s minutes", formatInteger(count)),
    },
    {
        name: "seconds",
        seconds: 1,
        label: () => _t("seconds"),
        text: (count) =>
            count === 1 ? _t("1 second") : _t("%s seconds", formatInteger(count)),
    },
];

/** The unit of a new duration (0): timers are mostly hours. */
const DEFAULT_UNIT = DURATION_UNITS[1];

/**
 * What 0 means, by field (the `zero` option): the fields are settings that 0
 * turns off, each in its own words.
 */
const ZERO_TEXTS = {
    never: () => _t("Never"),
    off: () => _t("Off"),
    none: () => _t("None"),
    unlimited: () => _t("No limit"),
};

/** The largest unit that holds `seconds` a whole number of times. */
export function wholeUnit(seconds) {
    if (!seconds) {
        return DEFAULT_UNIT;
    }
    return DURATION_UNITS.find((unit) => seconds % unit.seconds === 0);
}

/**
 * "10 minutes", "4 hours", "2 days": `seconds` in its largest whole unit; 0
 * in the words of `zero` (a key of ZERO_TEXTS).
 */
export function formatDuration(seconds, zero = "") {
    if (seconds === false || seconds === null) {
        return "";
    }
    if (seconds === 0 && ZERO_TEXTS[zero]) {
        return ZERO_TEXTS[zero]();
    }
    const unit = wholeUnit(seconds);
    return unit.text(seconds / unit.seconds);
}

/**
 * An integer field holding seconds: read as "4 hours", entered as a number
 * and a unit (seconds, minutes, hours, days).
 */
export class DurationField extends Component {
    static template = "eyrie_deployment.DurationField";
    static props = {
        ...standardFieldProps,
        zero: { type: String, optional: true },
        placeholder: { type: String, optional: true },
    };
    static defaultProps = {
        zero: "",
    };

    setup() {
        // The unit the user chose; by default, the value's largest whole unit.
        this.state = useState({ unitName: null });
        useInputField({
            getValue: () => this.amountText,
            refName: "numpadDecimal",
            parse: (text) => this.parseAmount(text),
        });
        useNumpadDecimal();
    }

    get units() {
        return DURATION_UNITS.slice().reverse();
    }

    get value() {
        return this.props.record.data[this.props.name];
    }

    get formattedValue() {
        return formatDuration(this.value, this.props.zero);
    }

    /**
     * The unit the amount is entered in: the one the user chose while it
     * holds the value a whole number of times (a value reloaded from the
     * server goes back to its own unit), else the value's largest whole unit.
     */
    get currentUnit() {
        const chosen = DURATION_UNITS.find((unit) => unit.name === this.state.unitName);
        if (chosen && (this.value || 0) % chosen.seconds === 0) {
            return chosen;
        }
        return wholeUnit(this.value || 0);
    }

    get amountText() {
        if (this.value === false) {
            return "";
        }
        return formatFloat(this.value / this.currentUnit.seconds, {
            digits: [false, 4],
            trailingZeros: false,
        });
    }

    /** Seconds of the amount typed, in the current unit (empty is 0). */
    parseAmount(text) {
        if (!text.trim()) {
            return 0;
        }
        const amount = parseFloat(text);
        if (amount < 0) {
            throw new Error("A duration cannot be negative.");
        }
        return Math.round(amount * this.currentUnit.seconds);
    }

    /** The same amount in another unit: "4" hours become "4" days. */
    async onUnitChange(ev) {
        const amount = (this.value || 0) / this.currentUnit.seconds;
        const unit = DURATION_UNITS.find((candidate) => candidate.name === ev.target.value);
        this.state.unitName = unit.name;
        await this.props.record.update({
            [this.props.name]: Math.round(amount * unit.seconds),
        });
    }
}

export const durationField = {
    component: DurationField,
    displayName: _t("Duration"),
    supportedOptions: [
        {
            label: _t("Zero means"),
            name: "zero",
            type: "selection",
            choices: [
                { label: _t("Never"), value: "never" },
                { label: _t("Off"), value: "off" },
                { label: _t("None"), value: "none" },
                { label: _t("No limit"), value: "unlimited" },
            ],
        },
    ],
    supportedTypes: ["integer"],
    isEmpty: (record, fieldName) => record.data[fieldName] === false,
    extractProps: ({ attrs, options }) => ({
        zero: options.zero || "",
        placeholder: attrs.placeholder,
    }),
};

registry.category("fields").add("eyrie_duration", durationField);
