"""The observability pages in a real Chromium (Debian's package, driven by Playwright), JavaScript off.

A demo-like mesh makes OK and failing calls; the browser searches for the error
traces, opens one, opens the failing span and reads its status message and
attributes, then finds the web → echo edge and its error rate on the service
map and follows it to the edge's error traces. Screenshots are kept under
``.cache/artifacts/browser`` (the path is printed). Skipped without
``/usr/bin/chromium`` locally; under ``CI=true`` a missing browser fails.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.mesh import ROOT
from tests.support.obsmesh import FAIL_CODE, UNARY, ObsMesh, running_obs_mesh

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = ROOT / ".cache" / "artifacts" / "browser"
OK_CALLS, BAD_CALLS = 16, 4


def _browser_or_skip() -> Any:
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("CI needs /usr/bin/chromium (Debian's chromium package, see .ci/run)")
        pytest.skip("no /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    return sync_playwright


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObsMesh]:
    _browser_or_skip()
    with running_obs_mesh(tmp_path_factory.mktemp("browser-mesh"), OK_CALLS, BAD_CALLS) as m:
        yield m


@pytest.fixture
def page(mesh: ObsMesh) -> Iterator[Any]:
    sync_playwright = _browser_or_skip()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    print(f"browser screenshots: {ARTIFACTS}")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True, timeout=60_000)
        try:
            context = browser.new_context(java_script_enabled=False, viewport={"width": 1400, "height": 900})
            tab = context.new_page()
            tab.set_default_timeout(30_000)
            yield tab
        finally:
            browser.close()


def test_error_trace_search_detail_and_service_map(mesh: ObsMesh, page: Any) -> None:
    admin = f"http://127.0.0.1:{mesh.web.admin}"
    page.goto(f"{admin}/traces")
    page.fill("input[name=service]", "echo")
    # the traffic's method only: a sidecar's own startup lookup may leave another error trace
    page.fill("input[name=method]", UNARY)
    page.check("input[name=errors]")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"errors=1"))
    rows = page.locator("#results tr.trace")
    assert rows.count() == BAD_CALLS
    assert page.locator("#results tr.trace.err").count() == BAD_CALLS
    page.screenshot(path=str(ARTIFACTS / "1-error-traces.png"), full_page=True)

    first = rows.first
    request_id = first.locator("td").nth(7).inner_text()
    assert request_id in mesh.bad_ids
    first.locator("a").click()
    page.wait_for_url(re.compile(r"/traces/[0-9a-f]{32}$"))
    failing = page.locator("details.span.err").filter(has_text="echo-sidecar")
    assert failing.count() == 1
    failing.locator("summary").click()  # <details> opens without JavaScript
    facts = failing.locator("table.facts")
    facts.wait_for(state="visible")
    assert facts.locator("tr", has_text="status").locator("td").inner_text() == f"ERROR: {FAIL_CODE}"
    attrs = {
        row.locator("th").inner_text(): row.locator("td").inner_text()
        for row in failing.locator("table.attrs tr").all()
    }
    assert attrs["rpc.grpc.status_code"] == "9"
    assert attrs["mesh.request_id"] == request_id
    assert attrs["mesh.service"] == "echo"
    page.screenshot(path=str(ARTIFACTS / "2-failing-span.png"), full_page=True)

    failing.locator("a", has_text="link to this span").click()  # a shareable deep link opens it
    page.wait_for_url(re.compile(r"\?span=[0-9a-f]{16}"))
    assert page.locator("details.span.selected[open]").count() == 1

    page.goto(f"{admin}/map")
    page.select_option("select[name=window]", "1h")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"window=1h"))
    edge = page.locator('tr.edge[data-caller="web"][data-callee="echo"]')
    assert edge.count() == 1
    rate = BAD_CALLS / (OK_CALLS + BAD_CALLS)
    assert edge.locator("td.error-rate").inner_text() == f"{rate:.1%}"
    assert page.locator("#graph line").count() >= 1
    page.screenshot(path=str(ARTIFACTS / "3-service-map.png"), full_page=True)
    edge.locator("a", has_text="errors").click()
    page.wait_for_url(re.compile(r"/traces\?"))
    assert page.locator("#results tr.trace.err").count() == BAD_CALLS
    page.screenshot(path=str(ARTIFACTS / "4-edge-errors.png"), full_page=True)
