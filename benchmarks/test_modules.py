"""Modules of Eyrie's tests that the benchmarks use (the in-process
Kubernetes API, the queue job helpers), loaded alone: importing the tests
package would load Odoo's test framework outside a test run."""

import importlib.util
import pathlib

TESTS = pathlib.Path(__file__).parents[1] / "eyrie_deployment" / "tests"


def load_test_module(name):
    spec = importlib.util.spec_from_file_location(
        f"eyrie_tests_{name}", TESTS / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
