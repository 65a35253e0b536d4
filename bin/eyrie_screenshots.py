"""Drive the demo in Chromium and take the README's pictures.

Run by bin/eyrie-screenshots, which starts the demo server. As the admin:
deploy the demo's Odoo deployment acme-staging from its form, wait for the
job runner to deploy it, take the form; then open its initialize job and
take its log.
"""

import argparse
import pathlib

from playwright.sync_api import sync_playwright

VIEWPORT = {"width": 1360, "height": 900}
# The dry-run cluster answers at once; the demo's job runner polls.
JOB_TIMEOUT_MS = 120_000
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def log_in(page, url, login, password):
    page.goto(f"{url}/web/login")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_selector(".o_main_navbar")


def open_deployment(page, url, name):
    page.goto(f"{url}/odoo/action-eyrie_deployment.eyrie_deployment_action")
    page.click(f".o_list_view td.o_data_cell[name=name]:has-text('{name}')")
    page.wait_for_selector(".o_form_view .o_statusbar_status")


def current_phase(value):
    return (
        ".o_form_view .o_statusbar_status "
        f"button.o_arrow_button_current[data-value='{value}']"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--chromium", required=True)
    parser.add_argument("--out", required=True, type=pathlib.Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=args.chromium, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport=VIEWPORT)
        log_in(page, args.url, "admin", "admin")
        open_deployment(page, args.url, "acme-staging")
        page.click(".o_statusbar_buttons button[name=action_deploy]")
        page.wait_for_selector(current_phase("deploy"), timeout=JOB_TIMEOUT_MS)
        # No tooltip of the last button clicked on the picture.
        page.mouse.move(0, 0)
        page.wait_for_timeout(1000)
        page.screenshot(path=args.out / "deployment-form.png")
        page.click("button.oe_stat_button[name=action_view_jobs]")
        page.click(
            ".o_list_view .o_data_row:has(td[name=action]:has-text('Initialize')) "
            "td[name=deployment_name]"
        )
        page.wait_for_selector(".o_form_view .o_field_widget[name=log]")
        page.wait_for_timeout(500)
        page.screenshot(path=args.out / "job-log.png")
        browser.close()
    print(f"eyrie: pictures written to {args.out}")


if __name__ == "__main__":
    main()
