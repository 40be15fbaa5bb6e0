"""The review app in a real browser: Debian's chromium, driven by Playwright, against uvicorn on a free port.

The flow of the issue: an operator logs in and uploads the photos of a synthetic TPS (the slip sample,
read for real), sees the preview; a reviewer opens the queue, corrects two fields with the keyboard only
(the live rule check turns green), saves with Enter, verifies with Enter, and exports. With
FORMC_SCREENSHOTS=1 it writes docs/img/web-preview.png, docs/img/web-review.png, docs/img/web-users.png and the
phone-width docs/img/web-queue-phone.png and docs/img/web-dashboard-phone.png for the README.
Skips when Playwright or a chromium binary is missing (Makefile's `test` installs Debian's chromium).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocr.db.store import default_url
from ocr.record import TpsIdentity
from ocr.review.accounts import hash_password
from ocr.review.workflow import Reviews
from ocr.web.app import create_app
from tests.db.test_store import tally
from tests.web.conftest import PASSWORD, served

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install formc[test])")
pytest.importorskip("uvicorn")

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "samples" / "kwk-gubernur-3" / "tps-0002"
SCREENSHOTS = os.environ.get("FORMC_SCREENSHOTS") == "1"


def _chromium() -> str:
    for candidate in (os.environ.get("FORMC_CHROMIUM"), shutil.which("chromium"), "/usr/lib/chromium/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.skip("no chromium binary (apt-get install chromium, or set FORMC_CHROMIUM): browser tests skipped")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[str, Reviews]]:
    """The app served by uvicorn in a thread; its base URL and its review store."""
    tmp = tmp_path_factory.mktemp("browser")
    app = create_app(default_url(tmp / "results.db"), tmp / "store", secret="browser-test")
    reviews: Reviews = app.state.reviews
    reviews.add_user("olga", "operator", hash_password(PASSWORD))
    reviews.add_user("rudi", "reviewer", hash_password(PASSWORD))
    reviews.add_user("rina", "reviewer", hash_password(PASSWORD))
    reviews.add_user("ade", "admin", hash_password(PASSWORD))
    with served(app) as base:
        yield base, reviews


@pytest.fixture(scope="module")
def browser() -> Iterator:
    executable = _chromium()
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, headless=True)
        yield b
        b.close()


def log_in(page, base: str, name: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/login" not in url)


def wait_for_images(images) -> None:
    """Waits until every image `images` locates has loaded, and checks that none is broken. By expect's own polling:
    a string predicate (`wait_for_function("...")`) is eval'd in the page, which the app's CSP refuses (EvalError)."""
    for image in images.all():
        sync_api.expect(image).to_have_js_property("complete", True)
        assert image.evaluate("i => i.naturalWidth") > 0, image


def tab_to(page, element_id: str, limit: int = 80) -> None:
    """Presses Tab until the element has the focus: how a keyboard user gets there."""
    for _ in range(limit):
        if page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached #{element_id}")


def test_upload_preview_review_with_the_keyboard_verify_export(server, browser):
    base, reviews = server
    context = browser.new_context(viewport={"width": 1360, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(20_000)

    # The operator: log in, upload the three photos of one TPS, see the preview within seconds.
    log_in(page, base, "olga")
    assert page.url.endswith("/upload")
    page.fill("input[name=submission]", "kab-x/tps-0002")
    page.set_input_files("input[name=photos]", sorted(str(p) for p in SAMPLE.glob("page-*.jpg")))
    start = time.perf_counter()
    page.click("button[type=submit]:has-text('Unggah dan baca')")
    page.wait_for_url(lambda url: "/submissions/" in url, timeout=120_000)
    seconds = time.perf_counter() - start
    assert page.locator("h1 .badge.review").is_visible()
    assert page.get_by_text("suara_sah = sum(suara_paslon_#) + sum(suara_kolom_kosong)").is_visible()
    assert page.get_by_text("A. Jumlah seluruh suara sah = Jumlah suara sah (1)").is_visible()  # the rule in words
    assert page.locator("figure.page img").count() == 3
    wait_for_images(page.locator("img"))
    print(f"upload to preview: {seconds:.1f} s")
    if SCREENSHOTS:
        page.screenshot(path=str(REPO / "docs" / "img" / "web-preview.png"))
    submission_id = int(page.url.rsplit("/", 1)[1])
    page.click("button:has-text('Keluar')")
    page.wait_for_url(lambda url: "/login" in url)

    # The reviewer: the queue, the submission, two corrections typed with the keyboard only.
    log_in(page, base, "rudi")
    page.goto(f"{base}/queue")
    page.click(f"a[href='/review/{submission_id}']")
    page.wait_for_url(f"{base}/review/{submission_id}")
    wait_for_images(page.locator(".crops img"))
    summary = page.locator("#rules-summary")
    assert "tidak terpenuhi" in summary.inner_text()
    assert page.evaluate("document.activeElement.id") == "v-pengguna_dpt_l"  # the first flagged field has the focus
    # In Indonesian, each field by the label the form prints, its id in small print.
    assert page.locator("label[for=v-pengguna_total_l]").inner_text().startswith("4. Jumlah Pengguna Hak Pilih")
    tab_to(page, "v-pengguna_total_l")
    page.keyboard.type("79")
    tab_to(page, "v-suara_sah")
    page.keyboard.type("171")
    assert summary.inner_text() == "semua aturan wajib terpenuhi"  # re-checked on the page as the numbers are typed
    if SCREENSHOTS:
        page.screenshot(path=str(REPO / "docs" / "img" / "web-review.png"))
    tab_to(page, "reason")
    page.keyboard.press("Control+A")
    page.keyboard.type("boxes misread; arithmetic slip on the form (71+71+29)")
    page.keyboard.press("Enter")  # saves
    page.wait_for_url(f"{base}/review/{submission_id}?saved=1")
    assert page.get_by_text("Anda mengoreksi kiriman ini: pemeriksa lain harus memverifikasinya").is_visible()
    assert page.locator("#verify").count() == 0  # four eyes: who corrected does not verify
    # English is one click away, on the same page, and the live check speaks it too.
    page.click("header button:has-text('English')")
    page.wait_for_url(f"{base}/review/{submission_id}?saved=1")
    assert page.locator("#rules-summary").inner_text() == "every hard rule holds"
    assert page.get_by_text("You corrected this submission: another reviewer must verify it").is_visible()
    page.click("header button:has-text('Bahasa Indonesia')")
    page.wait_for_url(f"{base}/review/{submission_id}?saved=1")
    page.click("button:has-text('Keluar')")
    page.wait_for_url(lambda url: "/login" in url)

    # A second reviewer checks the corrected values and verifies.
    log_in(page, base, "rina")
    page.goto(f"{base}/review/{submission_id}")
    assert page.locator("#rules-summary").inner_text() == "semua aturan wajib terpenuhi"
    page.click("#verify")
    page.wait_for_url(lambda url: url != f"{base}/review/{submission_id}")
    view = reviews.view(submission_id)
    assert view.state == "verified" and view.verified_by == "rina"
    read_l = view.result.fields["pengguna_total_l"].value  # the machine's misread of "-79"
    assert {c.field_id: (c.old_value, c.new_value) for c in view.corrections} == {"pengguna_total_l": (read_l, 79),
                                                                                  "suara_sah": (181, 171)}

    # The export of verified results, downloaded through the page's link.
    page.goto(f"{base}/queue")
    with page.expect_download() as download:
        page.click("a[href='/export/results.csv']")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    values = {r["field"]: r["value"] for r in rows if r["submission"] == "kab-x/tps-0002"}
    assert values["suara_sah"] == "171" and values["pengguna_total_l"] == "79" and values["suara_paslon_1"] == "71"
    context.close()


def test_an_operator_picks_the_place_from_the_cascading_lists_and_it_lands_in_the_database(server, browser):
    """Issue 20: the upload form's pickers (regions.js) fill province -> kabupaten/kota -> kecamatan -> kelurahan/desa
    from the registry, a new choice above empties the lists below; a refused upload shows the form again with the
    place still picked; the upload's TPS identity is the one picked. With FORMC_SCREENSHOTS=1:
    docs/img/web-upload-pickers.png (390 px wide)."""
    base, reviews = server
    photos = sorted(str(p) for p in (REPO / "samples" / "kwk-bupati-tunggal" / "tps-0001").glob("page-*.jpg"))
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    log_in(page, base, "olga")
    page.goto(f"{base}/upload")
    page.select_option("select[data-region=province]", "32")  # waits for the list to come
    page.select_option("#kabupaten", "3204")
    page.select_option("#kecamatan", "320406")
    sync_api.expect(page.locator("#desa option[value='3204061001']")).to_be_attached()
    page.select_option("#kecamatan", "320405")  # another kecamatan: its own desa only
    page.select_option("#desa", "3204052001")
    assert page.locator("#desa option[value^='320406']").count() == 0
    assert page.locator("#desa option:checked").inner_text() == "Cileunyi Kulon (3204052001)"
    page.fill("input[name=tps]", "12")
    page.select_option("select[name=election]", "bupati")
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
    if SCREENSHOTS:
        page.screenshot(path=str(REPO / "docs" / "img" / "web-upload-pickers.png"), full_page=True)
    page.set_input_files("input[name=photos]", (photos * 7)[:7])  # more than one TPS's photos: refused
    page.click("button[type=submit]:has-text('Unggah dan baca')")
    sync_api.expect(page.get_by_text("Paling banyak 6 foto per TPS")).to_be_visible()
    sync_api.expect(page.locator("#desa")).to_have_value("3204052001")  # the lists filled again down to the desa
    assert page.locator("#kecamatan").input_value() == "320405" and page.input_value("input[name=tps]") == "12"
    page.set_input_files("input[name=photos]", photos)
    page.click("button[type=submit]:has-text('Unggah dan baca')")
    page.wait_for_url(lambda url: "/submissions/" in url, timeout=120_000)
    view = reviews.view(int(page.url.rsplit("/", 1)[1]))
    assert view.result.place == TpsIdentity(desa="3204052001", tps=12, election="bupati")
    assert view.result.submission == "3204052001/TPS-012" and view.region == "Kabupaten Bandung"
    context.close()


def _admin_page(browser, base: str):
    """A desktop-sized browser context and its page, logged in as the admin ade."""
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    log_in(page, base, "ade")
    return context, page


def test_the_admin_resets_a_password_that_works_once_shown(server, browser):
    """The admin's users page (Indonesian): a new operator's password reset with one click, shown once, and the
    operator logs in with it."""
    base, reviews = server
    reviews.add_user("budi", "operator", hash_password(PASSWORD))
    context, page = _admin_page(browser, base)
    page.click("nav a:has-text('Pengguna')")
    page.wait_for_url(f"{base}/admin/users")
    row = page.locator("table.users tr").filter(has=page.locator("td", has_text="budi"))
    assert "belum pernah" in row.inner_text() and row.locator("select option:checked").inner_text() == "operator"
    if SCREENSHOTS:
        page.screenshot(path=str(REPO / "docs" / "img" / "web-users.png"))
    row.locator("button:has-text('Atur ulang kata sandi')").click()
    page.wait_for_url(f"{base}/admin/users/budi/password")
    password = page.locator(".one-time code").inner_text()
    assert "hanya ditampilkan sekali" in page.content()
    page.click("button:has-text('Keluar')")
    page.wait_for_url(lambda url: "/login" in url)
    log_in(page, base, "budi", password)
    assert page.url == f"{base}/upload"
    context.close()


def test_queue_list_and_dashboard_fit_a_phone(server, browser):
    """At 390 px wide (a phone) the queue, the list of submissions and the dashboard scroll only downwards: a long
    list's rows stack, a wide table scrolls inside its own box."""
    base, reviews = server
    statuses = ["review", "review", "ok", "rejected", "review", "incomplete"]
    reviews.store.save_many(tally(status).model_copy(update={
        "submission": f"kab-bandung-barat/kec-cipongkor/desa-sirnagalih/tps-{n + 1:03d}", "photos_key": f"{n:064x}"})
        for n, status in enumerate(statuses))
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                                  has_touch=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    log_in(page, base, "rina")
    for path, shot in [("/queue", "web-queue-phone.png"), ("/submissions?region=kab-bandung-barat", None),
                       ("/dashboard", "web-dashboard-phone.png"), ("/audit", None)]:
        if path == "/audit":
            log_in(page, base, "ade")
        page.goto(f"{base}{path}")
        sync_api.expect(page.locator("main h1")).to_be_visible()
        assert page.evaluate("document.scrollingElement.scrollWidth") <= 390, path
        if SCREENSHOTS and shot:
            page.screenshot(path=str(REPO / "docs" / "img" / shot), full_page=True)
    context.close()


def test_a_reader_drills_down_the_public_site_to_a_tps_and_sees_its_photo(browser, tmp_path):
    """Issue 20: no log-in, from the country to a verified TPS by its links alone, its page photo shown; on a phone's
    width every level scrolls only downwards. With FORMC_SCREENSHOTS=1: docs/img/publik-kabupaten.png."""
    import cv2

    from tests.web.test_public import _app

    app, (verified, _) = _app(tmp_path)
    photo = cv2.imencode(".jpg", cv2.resize(cv2.imread(str(SAMPLE / "page-2.jpg")), (600, 425)))[1].tobytes()
    for drawn in (tmp_path / "store").rglob("page-0.jpg"):  # the fixture's stand-ins, as a real drawing
        drawn.write_bytes(photo)
    with served(app) as base:
        for width, shot in ((1280, "publik-kabupaten.png"), (390, None)):
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.set_default_timeout(20_000)
            page.goto(f"{base}/publik")
            for name in ("Jawa Barat", "Kabupaten Bandung", "Cileunyi", "Cileunyi Kulon", "TPS 001"):
                if name == "Cileunyi" and SCREENSHOTS and shot:
                    page.screenshot(path=str(REPO / "docs" / "img" / shot), full_page=True)
                page.get_by_role("link", name=name, exact=True).click()
                sync_api.expect(page.locator("h1")).to_contain_text(name.replace("TPS 001", "TPS"))
                assert page.evaluate("document.scrollingElement.scrollWidth") <= width, name
            assert page.url.endswith("/publik/bupati/3204052001/tps/1")
            wait_for_images(page.locator("img.page"))
            assert page.locator("img.page").count() == 1
            page.close()


def test_an_admin_fixes_a_learned_template_saves_it_and_reads_a_photo_with_it(browser, tmp_path, monkeypatch):
    """The template editor (Indonesian): a markerless blank scan uploaded and learned, a field renamed with a click and
    the keyboard, the proposed rule accepted, the template saved into the own templates' folder (in FORMC_TEMPLATES,
    as `formc serve` makes it) and a filled scan read with it on the same page. With FORMC_SCREENSHOTS=1:
    docs/img/web-template-editor.png."""
    from ocr.templates.catalog import get_template, reload_templates
    from tests.web.test_templates_editor import VALUES, blank_scan, filled_scan

    own = tmp_path / "own"
    own.mkdir()
    monkeypatch.setenv("FORMC_TEMPLATES", str(own))
    reload_templates()
    app = create_app(default_url(tmp_path / "results.db"), tmp_path / "store", secret="browser-test")
    app.state.reviews.add_user("ade", "admin", hash_password(PASSWORD))
    try:
        with served(app) as base:
            context, page = _admin_page(browser, base)
            page.click("nav a:has-text('Templat')")
            page.wait_for_url(f"{base}/admin/templat")
            page.set_input_files("input[name=scan]", {"name": "c1-kosong.png", "mimeType": "image/png",
                                                      "buffer": blank_scan()})
            page.fill("input[name=template_id]", "kantor-c1")
            page.fill("input[name=description]", "C1 Kabupaten Contoh, halaman suara")
            page.fill("input[name=dpi]", "127")
            page.click("button:has-text('Cari kotak')")
            page.wait_for_url(lambda url: "/admin/templat/draft/" in url)
            wait_for_images(page.locator("#page-image"))
            assert page.locator("svg#boxes g.field").count() == 11

            # A field without a known label: clicked, then renamed from the keyboard (Enter, type, Enter).
            page.locator("svg#boxes g.field[data-id=row_02_col_1] rect").first.click()
            assert page.input_value("#field-id") == "row_02_col_1"
            page.keyboard.press("Enter")
            page.keyboard.type("suara_tidak_sah_baris_1")
            page.keyboard.press("Enter")
            renamed = page.locator("svg#boxes g.field[data-id=suara_tidak_sah_baris_1]")
            sync_api.expect(renamed).to_be_focused()
            page.keyboard.press("Shift+ArrowDown")  # moved 1 mm down and back with the arrow keys
            page.keyboard.press("Shift+ArrowUp")
            rule = page.locator("#rules li").filter(has_text="suara_total = suara_sah + suara_tidak_sah")
            rule.locator("button:has-text('Terima')").click()
            sync_api.expect(rule.locator(".state")).to_have_text("diterima")
            sync_api.expect(page.locator("#sync-status")).to_have_text("Perubahan tersimpan di draf.")
            renamed.locator("rect").first.click()
            page.keyboard.press("+")
            page.keyboard.press("+")  # 200 %: the page scrolls inside its box
            sync_api.expect(page.locator("#zoom-level")).to_have_text("200 %")
            if SCREENSHOTS:
                page.set_viewport_size({"width": 1360, "height": 1000})
                renamed.evaluate("g => g.scrollIntoView({block: 'center', inline: 'center'})")
                page.evaluate("window.scrollTo(0, 0)")
                page.screenshot(path=str(REPO / "docs" / "img" / "web-template-editor.png"))
            page.click("button:has-text('Simpan templat')")
            sync_api.expect(page.get_by_text("Templat kantor-c1 disimpan")).to_be_visible()
            template = get_template("kantor-c1")
            assert "suara_tidak_sah_baris_1" in template.fields
            assert [r.expr for r in template.rules] == ["suara_total = suara_sah + suara_tidak_sah"]

            # Try it: a filled scan of the page read with the template, the values on the same page.
            page.set_input_files("#try-form input[name=photo]", {"name": "tps-001.png", "mimeType": "image/png",
                                                                 "buffer": filled_scan()})
            page.click("button:has-text('Coba baca')")
            row = page.locator("table.tried tr").filter(has=page.locator("code", has_text="suara_sah")).first
            sync_api.expect(row).to_contain_text(str(VALUES["suara_sah"]))
            wait_for_images(page.locator("#coba img"))
            context.close()
    finally:
        monkeypatch.delenv("FORMC_TEMPLATES")
        reload_templates()
