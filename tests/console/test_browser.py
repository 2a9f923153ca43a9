"""The console in a real browser (Debian's chromium through Playwright) against the real app on a loopback port:
sign in, review with the map and the keyboard, decisions reaching the flags, conflicts, four eyes, a reader's
view, forecasts, the monitor, models; accessibility checked with axe-core; screenshots of every page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from consolekit import new_page
from consoleworld import P

pytestmark = pytest.mark.slow

AXE = Path(__file__).resolve().parents[2] / "api" / "console" / "static" / "vendor" / "axe-core" / "axe.min.js"


def watch(page) -> list[str]:
    """Collect the page's script errors and failed requests (each test asserts there are none)."""
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"script error: {e}"))
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    return errors


def shot(page, artifacts, name: str) -> None:
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def axe(page, *, rules: list[str] | None = None) -> list[dict]:
    """axe-core's violations of WCAG 2 A/AA rules (serious and critical), injected from the vendored copy."""
    # evaluated over CDP, so the console's CSP (no inline script) stays on while axe runs
    page.evaluate(AXE.read_text("utf-8") + "\n;0")
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa']},
                                           resultTypes: ['violations']});
        return r.violations.map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
    }""")
    return [v for v in result if v["impact"] in ("serious", "critical")]


def text(locator) -> str:
    """A locator's text with whitespace runs collapsed (templates wrap long sentences)."""
    return " ".join((locator.text_content() or "").split())


def page_data(page) -> dict:
    return json.loads(text(page.locator("#page-data")))


def click_cell(page, data: dict, iy: int, ix: int, *, drag_to: tuple[int, int] | None = None) -> None:
    box = page.locator("#overlay").bounding_box()
    w = data["window"]
    scale_px = box["width"] / (w["ix1"] - w["ix0"])

    def at(y, x):
        return box["x"] + (x - w["ix0"] + 0.5) * scale_px, box["y"] + (y - w["iy0"] + 0.5) * scale_px

    x0, y0 = at(iy, ix)
    page.mouse.move(x0, y0)
    page.mouse.down()
    if drag_to is not None:
        x1, y1 = at(*drag_to)
        page.mouse.move(x1, y1, steps=4)
    page.mouse.up()


# -------------------------------------------------------------------------------------------------------------

def test_review_select_cells_accept_reaches_the_flags_and_the_audit(browser, live, world, artifacts):
    from forecast.quality import apply_pending_decisions
    from forecast.review import ReviewQueue
    from forecast.stores import open_observations, store_for

    page = new_page(browser, live.url, world["tokens"]["otto"])
    errors = watch(page)
    page.goto("/console/review")
    shot(page, artifacts, "01-review-queue")
    assert axe(page) == []
    # the top item is the first row (most hazardous first)
    page.locator("table.queue tbody tr").first.locator("a").click()
    page.wait_for_url(re.compile(r"/console/review/\d+$"))
    item = int(page.url.rsplit("/", 1)[1])
    assert item == world["top_item"]
    page.wait_for_function("document.getElementById('frame').complete && document.getElementById('frame').naturalWidth > 0")
    page.wait_for_selector("#ts-chart canvas")
    shot(page, artifacts, "02-review-item")
    assert axe(page) == []
    data = page_data(page)
    k = data["window"]["peak_frame"]
    cells = [c for c in data["flagged"][k] if c[5]]
    assert len(cells) >= 3
    # select two cells by clicking, then hover for the reason
    for c in cells[:2]:
        click_cell(page, data, c[0], c[1])
    assert text(page.locator("#sel-count")) == "2"
    page.locator("#overlay").hover(position={"x": 5, "y": 5})
    click_cell(page, data, cells[2][0], cells[2][1])
    assert text(page.locator("#sel-count")) == "3"
    assert "SUSPECT" in text(page.locator("#tooltip")) or "GOOD" in text(page.locator("#tooltip"))
    assert page.locator("#scope-selected").is_checked()
    shot(page, artifacts, "03-review-item-selected")
    page.fill("#comment", "radar and gauges agree: a real storm core")
    page.click("#accept")
    page.wait_for_url(re.compile(rf"/console/review/{item}\?decided=\d+$"))
    assert "3 cell(s) accepted as real" in text(page.locator("#flash"))
    # the worker's cycle writes the decision into the flags
    settings = live.settings
    cat = world["catalog"]
    t = data["frames"][k]["time"]
    with ReviewQueue(settings.db_url) as q:
        sid = apply_pending_decisions(q, cat, store=store_for(settings))
    assert sid is not None
    ds = open_observations(cat.id, store=store_for(settings), start=data["frames"][k]["iso"], end=data["frames"][k]["iso"])
    qc, tests = ds[f"{P}_qc"].values[0], ds[f"{P}_qc_tests"].values[0]
    for c in cells[:3]:
        assert qc[c[0], c[1]] == 1 and tests[c[0], c[1]] & (1 << 16), c  # GOOD + REVIEWED_ACCEPTED
    other = cells[3] if len(cells) > 3 else None
    if other is not None:
        assert qc[other[0], other[1]] == 3  # not selected: still SUSPECT
    page.reload()
    assert "written" in text(page.locator("table.decisions"))
    audit = text(page.locator("table.audit"))
    assert "decision" in audit and "writeback_applied" in audit and "otto" in audit
    assert t == data["frames"][k]["time"]
    shot(page, artifacts, "04-review-item-decided")
    assert errors == []


def test_queue_filters_update_the_table_in_place(browser, live, world, artifacts):
    page = new_page(browser, live.url, world["tokens"]["rita"])
    errors = watch(page)
    page.goto("/console/review")
    assert page.locator("table.queue tbody tr").count() == len(world["items"])
    page.evaluate("window.__marker = 1")  # survives only if the page is not reloaded
    page.select_option("#f-state", "decided")
    page.wait_for_url(re.compile(r"state=decided"))  # htmx pushed the filters into the address
    page.locator("text=No review items match these filters.").wait_for()
    assert page.evaluate("window.__marker") == 1
    page.select_option("#f-state", "todo")
    page.locator("table.queue").wait_for()
    assert errors == []


def test_a_second_operators_conflicting_decision_shows_the_conflict(browser, live, world, artifacts):
    item = world["items"][-1]
    otto = new_page(browser, live.url, world["tokens"]["otto"])
    olga = new_page(browser, live.url, world["tokens"]["olga"])
    for p in (otto, olga):
        p.goto(f"/console/review/{item}")
    otto.fill("#comment", "real")
    otto.click("#accept")
    otto.wait_for_url(re.compile(r"decided="))
    olga.fill("#comment", "a spike: radar artefact")
    olga.click("#reject")
    banner = olga.locator(".banner.error")
    banner.wait_for()
    said = text(banner)
    assert "Conflict: your decision was not recorded" in said and "otto decided first" in said
    assert "a spike: radar artefact" in said
    shot(olga, artifacts, "05-review-conflict")


def test_four_eyes_in_the_browser(browser, live, world, artifacts):
    item = world["top_item"]
    otto = new_page(browser, live.url, world["tokens"]["otto"])
    otto.goto(f"/console/review/{item}")
    otto.fill("#comment", "ground clutter")
    otto.click("#reject")
    otto.wait_for_url(re.compile(r"decided="))
    assert "second, different operator must confirm" in text(otto.locator("#four-eyes"))
    assert "pending" in text(otto.locator("h1"))
    otto.fill("#comment", "confirming my own reject")
    otto.click("#reject")
    otto.locator(".banner.error").wait_for()
    assert "Four eyes" in text(otto.locator(".banner.error"))
    shot(otto, artifacts, "06-review-four-eyes")
    olga = new_page(browser, live.url, world["tokens"]["olga"])
    olga.goto(f"/console/review/{item}")
    assert "otto proposed to reject" in text(olga.locator("#four-eyes"))
    olga.fill("#comment", "agree: clutter")
    olga.click("#reject")
    olga.wait_for_url(re.compile(r"decided="))
    assert "decided" in text(olga.locator("h1"))


def test_keyboard_flow(browser, live, world, artifacts):
    page = new_page(browser, live.url, world["tokens"]["otto"])
    first, second = world["items"][:2]
    page.goto(f"/console/review/{first}")
    page.keyboard.press("c")
    assert page.evaluate("document.activeElement.id") == "comment"
    page.keyboard.type("checked")
    assert page.locator("#comment").input_value() == "checked"  # 'c' itself was not typed
    page.keyboard.press("Escape")
    page.keyboard.press("n")
    page.wait_for_url(re.compile(rf"/console/review/{second}$"))
    page.keyboard.press("a")  # no comment yet: the browser refuses to submit and points at the comment box
    page.wait_for_timeout(300)
    assert page.url.endswith(f"/console/review/{second}")
    assert page.evaluate("document.activeElement.id") == "comment"
    page.keyboard.type("a real cell")
    page.keyboard.press("Escape")
    page.keyboard.press("a")
    page.wait_for_url(re.compile(r"decided="))
    assert "accepted as real" in text(page.locator("#flash"))
    page.keyboard.press("?")
    assert page.locator("#help").is_visible()
    shot(page, artifacts, "07-review-keyboard-help")
    # focus order: the skip link first, then the sections, and on the form the comment before the buttons
    page.goto(f"/console/review/{first}")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.focus("#comment")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "accept"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "reject"


def test_a_reader_sees_no_decide_form_and_a_forged_post_is_refused(browser, live, world, artifacts):
    page = new_page(browser, live.url, world["tokens"]["rita"])
    page.goto(f"/console/review/{world['top_item']}")
    assert page.locator("#decide").count() == 0
    assert "deciding needs role operator" in text(page.locator("#no-decide"))
    shot(page, artifacts, "08-review-item-reader")
    # a forged post from this browser (its session cookie, no CSRF token)
    r = page.request.post(f"{live.url}/console/review/{world['top_item']}/decide",
                          form={"action": "reject", "comment": "forged"})
    assert r.status == 403 and "CSRF check failed" in r.text()
    # and the same from a cross-site page: SameSite=Strict keeps the cookie home, so it is not even signed in
    otto = new_page(browser, live.url, world["tokens"]["otto"])
    r = otto.request.post(f"{live.url}/console/review/{world['top_item']}/decide",
                          form={"action": "reject", "comment": "forged", "_csrf": "wrong"})
    assert r.status == 403 and "CSRF check failed" in r.text()


def test_forecast_page_animates_and_a_click_shows_the_point(browser, live, world, artifacts):
    page = new_page(browser, live.url, world["tokens"]["rita"])
    errors = watch(page)
    page.goto("/console/forecasts")
    page.wait_for_function("document.getElementById('fframe').complete && document.getElementById('fframe').naturalWidth > 0")
    assert "Fallback" in text(page.locator("#fallback"))
    page.fill("#flead", "5")
    page.locator("#flead").dispatch_event("input")
    assert "+30 min" in text(page.locator("#fframe-label"))
    assert "1 extreme" in text(page.locator("#fframe-marks"))
    box = page.locator("#foverlay").bounding_box()
    data = page_data(page)
    px = box["width"] / data["nx"]
    page.mouse.click(box["x"] + 20.5 * px, box["y"] + 10.5 * px)
    page.wait_for_selector("#series-chart canvas")
    series = text(page.locator("#series"))
    assert "iy 10, ix 20" in series and "implausible" in series
    shot(page, artifacts, "09-forecasts")
    assert axe(page) == []
    assert errors == []


def test_other_pages_render_and_pass_axe(browser, live, world, artifacts):
    page = new_page(browser, live.url, world["tokens"]["ada"])
    errors = watch(page)
    for path, name, marker in [
        ("/console/quality", "10-quality", "ol.strip"),
        ("/console/monitor", "11-monitor", "text=Monitoring data is not available yet"),
        ("/console/models", "12-models", "table.models"),
        (f"/console/models/{world['models']['passing']}", "13-model-passing", "#gate-passed"),
        (f"/console/models/{world['models']['failing']}", "14-model-refused", "#gate-refused"),
        ("/console/users", "15-users", "table.users"),
    ]:
        page.goto(path)
        page.wait_for_selector(marker)
        shot(page, artifacts, name)
        assert axe(page) == [], path
    page.goto("/console/login")  # signed in already: the form still renders
    shot(page, artifacts, "00-login")
    assert axe(page) == []
    assert errors == []


def test_promotion_in_the_browser(browser, live, world, artifacts):
    from forecast.registry import ModelRegistry

    page = new_page(browser, live.url, world["tokens"]["ada"])
    v = world["models"]["passing"]
    page.goto(f"/console/models/{v}")
    page.fill("#reason", "beats persistence and S-PROG at the key leads")
    page.click("#promote-btn")
    page.wait_for_url(re.compile(r"promoted=1"))
    assert "production" in text(page.locator("h1"))
    shot(page, artifacts, "16-model-promoted")
    with ModelRegistry(live.settings.db_url, live.settings.models_dir) as reg:
        assert reg.get(v).stage == "production"


def test_no_forecasts_yet_in_the_browser(browser, bare_world, tmp_path, artifacts):
    from consolekit import LiveServer
    from consoleworld import settings_for

    with LiveServer(settings_for(bare_world, tmp_path)) as srv:
        page = new_page(browser, srv.url, bare_world["tokens"]["rita"])
        page.goto("/console/forecasts")
        assert "No forecasts of radar_precip yet" in text(page.locator("#no-forecast"))
        shot(page, artifacts, "17-forecasts-none-yet")



def test_monitor_page_with_data_charts_acknowledges_and_passes_axe(browser, world, tmp_path, artifacts):
    import sys

    from consolekit import LiveServer
    from consoleworld import settings_for

    from forecast.monitoring.store import MonitorDB

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "forecast" / "monitoring"))
    from monitorkit import fill_monitor_db

    st = settings_for(world, tmp_path)
    with MonitorDB(st.db_url) as db:
        firing, _ = fill_monitor_db(db, world["catalog"], n_inits=24)
    with LiveServer(st) as srv:
        page = new_page(browser, srv.url, world["tokens"]["otto"])
        errors = watch(page)
        page.goto("/console/monitor")
        page.wait_for_selector("#lead-chart canvas")
        page.wait_for_selector("#time-chart canvas")
        assert "+30 min *" in text(page.locator("#skill-table"))
        shot(page, artifacts, "16-monitor-data")
        assert axe(page) == []
        page.fill(f"#ack-{firing.id}", "looking at the degraded model")
        page.click(f"#alert-{firing.id} button[type=submit]")
        page.wait_for_selector("#flash")
        assert "otto" in text(page.locator(f"#alert-{firing.id}"))
        shot(page, artifacts, "17-monitor-acknowledged")
        assert axe(page) == []
        assert errors == []
