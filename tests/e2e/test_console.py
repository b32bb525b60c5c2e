"""The web console in a real browser: Debian's headless Chromium driven by Selenium against a
server the test starts. Screenshots of every step go to test-artifacts/console/ (or
$ICEVAULT_TEST_ARTIFACTS/console/)."""

from __future__ import annotations

import hashlib
import http.cookiejar
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from icevault.testing import IcevaultServer
from tests.system import require_chromium

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("ICEVAULT_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "console"


@pytest.fixture(scope="module")
def server() -> Iterator[IcevaultServer]:
    # Standard retrievals take 3 s: long enough to watch a job go from InProgress to done.
    with IcevaultServer(tier_delays={"standard": 3}) as running:
        yield running


@pytest.fixture()
def downloads(tmp_path: Path) -> Path:
    path = tmp_path / "downloads"
    path.mkdir()
    return path


@pytest.fixture()
def browser(downloads: Path) -> Iterator[WebDriver]:
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not look for drivers online
    options = webdriver.ChromeOptions()
    chromium, chromedriver = require_chromium()  # skips (fails, in CI) without them
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--disable-gpu"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads), "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(downloads)})
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver: WebDriver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def sign_in(driver: WebDriver, server: IcevaultServer, secret: str | None = None,
            key_id: str | None = None) -> None:
    driver.get(f"{server.endpoint_url}/console/")
    assert driver.current_url.endswith("/console/sign-in")
    driver.find_element(By.ID, "access_key_id").send_keys(key_id or server.access_key_id)
    driver.find_element(By.ID, "secret_access_key").send_keys(
        secret or server.secret_access_key)
    follow(driver, driver.find_element(By.CSS_SELECTOR, "#sign-in button"))


def follow(driver: WebDriver, element: Any) -> None:
    """Click what submits a form or follows a link, and wait until the next page has loaded
    (a click returns before the browser has navigated). The old page is marked, so the wait
    ends on a new document; while the browser navigates, asking may fail, and is retried."""
    driver.execute_script("window.icevaultOldPage = true")
    element.click()
    WebDriverWait(driver, 20, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script("return document.readyState === 'complete' && "
                                   "window.icevaultOldPage === undefined"))


def wait_for(condition: Any, timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_sign_in_refuses_a_wrong_key_and_sets_a_guarded_session(
        server: IcevaultServer, browser: WebDriver) -> None:
    # Nothing without a session: every page sends to the sign-in form.
    browser.get(f"{server.endpoint_url}/console/status")
    assert browser.current_url.endswith("/console/sign-in")
    sign_in(browser, server, secret="not-the-secret")
    error = browser.find_element(By.ID, "sign-in-error")
    assert error.text == "The access key or secret is not valid."
    assert all(c["name"] != "icevault_console" for c in browser.get_cookies())
    shot(browser, "01-sign-in-refused")
    sign_in(browser, server, key_id="AKIDOESNOTEXIST00000")
    assert browser.find_element(By.ID, "sign-in-error").text.startswith("The access key")
    sign_in(browser, server)
    assert browser.current_url.endswith("/console/")
    who = browser.find_element(By.ID, "who").text
    assert re.fullmatch(r"arn:aws:iam::\d{12}:root", who)
    cookie = next(c for c in browser.get_cookies() if c["name"] == "icevault_console")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/console"
    assert server.secret_access_key not in cookie["value"]
    # Script on the page cannot read it.
    assert "icevault_console=" not in browser.execute_script("return document.cookie")
    shot(browser, "02-signed-in")
    follow(browser, browser.find_element(By.ID, "sign-out"))
    browser.get(f"{server.endpoint_url}/console/")
    assert browser.current_url.endswith("/console/sign-in")


def test_a_vault_of_a_thousand_archives_page_by_page(
        server: IcevaultServer, browser: WebDriver) -> None:
    server.seed_vault("seeded", archives=1000, sizes=(1, 1 << 20), descriptions="mixed",
                      seed=7)
    sign_in(browser, server)
    row = browser.find_element(By.XPATH, "//table[@id='vaults']//tr[td/a[text()='seeded']]")
    assert row.find_elements(By.TAG_NAME, "td")[1].text == "1,000"
    shot(browser, "03-vaults")
    follow(browser, row.find_element(By.LINK_TEXT, "seeded"))
    seen: list[str] = []
    pages = 0
    while True:
        pages += 1
        assert browser.find_element(By.ID, "page-number").text == str(pages)
        ids = [code.get_attribute("title") for code in
               browser.find_elements(By.CSS_SELECTOR, "#archives tr.archive code.id")]
        assert len(ids) == (50 if pages < 20 else 1000 - 19 * 50)
        seen.extend(str(i) for i in ids)
        if pages == 2:
            shot(browser, "04-archives-page-2")
        try:
            follow(browser, browser.find_element(By.ID, "next-page"))
        except NoSuchElementException:
            break
    assert pages == 20 and len(seen) == len(set(seen)) == 1000
    # The same archives the Glacier API knows: an inventory lists exactly these.
    client = server.client()
    job = client.initiate_job(vaultName="seeded", jobParameters={"Type": "inventory-retrieval"})
    server.advance_clock(seconds=0)
    body = client.get_job_output(vaultName="seeded", jobId=job["jobId"])["body"].read()
    assert {a["ArchiveId"] for a in json.loads(body)["ArchiveList"]} == set(seen)
    # Filtering by description and size.
    browser.find_element(By.NAME, "q").send_keys("mt2")
    browser.find_element(By.NAME, "min").send_keys("1KiB")
    follow(browser, browser.find_element(By.CSS_SELECTOR, "#filters button"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#archives tr.archive")
    assert rows, "the filter matched nothing"
    for found in rows:
        assert "mt2" in found.find_element(By.CSS_SELECTOR, ".description").text.lower()
        assert not found.find_elements(By.XPATH, "td[3][contains(., ' B') and not(contains(., 'iB'))]")
    shot(browser, "05-archives-filtered")
    # And by creation date (the seeded archives span five years).
    browser.get(f"{server.endpoint_url}/console/vaults/seeded?from=2024-01-01&to=2024-12-31")
    dates = [row.find_elements(By.TAG_NAME, "td")[3].text
             for row in browser.find_elements(By.CSS_SELECTOR, "#archives tr.archive")]
    assert dates and all(date.startswith("2024-") for date in dates), dates


def test_a_retrieval_started_watched_and_downloaded(
        server: IcevaultServer, browser: WebDriver, downloads: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 12345)
    client = server.client()
    client.create_vault(vaultName="photos")
    archive_id = client.upload_archive(vaultName="photos", body=data,
                                       archiveDescription="holiday-2024.tar")["archiveId"]
    sign_in(browser, server)
    browser.get(f"{server.endpoint_url}/console/vaults/photos?q=holiday")
    row = browser.find_element(By.CSS_SELECTOR, "#archives tr.archive")
    assert row.find_element(By.CSS_SELECTOR, "code.id").get_attribute("title") == archive_id
    follow(browser, row.find_element(By.CSS_SELECTOR, "form.retrieve button"))
    assert "/console/vaults/photos/jobs?started=" in browser.current_url
    started = browser.find_element(By.ID, "started").text
    assert started.startswith("Retrieval of archive ") and "tier Standard" in started
    state = browser.find_element(By.CSS_SELECTOR, "#jobs tr.job .state").text
    assert state == "InProgress"
    assert "due in" in browser.find_element(By.CSS_SELECTOR, "#jobs .countdown").text
    shot(browser, "06-job-in-progress")
    # The page refreshes itself while the job runs; no click is needed to see it finish.
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#jobs a.download"),
             what="the job to succeed")
    assert browser.find_element(By.CSS_SELECTOR, "#jobs tr.job .state").text == "Succeeded"
    assert "expires in 23 h" in browser.find_element(By.CSS_SELECTOR, "#jobs .countdown").text
    shot(browser, "07-job-succeeded")
    browser.find_element(By.CSS_SELECTOR, "#jobs a.download").click()
    target = wait_for(lambda: [p for p in downloads.iterdir()
                               if not p.name.endswith(".crdownload")
                               and p.stat().st_size == len(data)],
                      what="the download")[0]
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert target.name == "holiday-2024.tar"  # the description's file name


def test_vault_actions_and_a_phone_sized_screen(
        server: IcevaultServer, browser: WebDriver) -> None:
    sign_in(browser, server)
    browser.find_element(By.ID, "new-vault-name").send_keys("from-the-console")
    follow(browser, browser.find_element(By.CSS_SELECTOR, "#create-vault button"))
    assert browser.current_url.endswith("/console/vaults/from-the-console")
    client = server.client()
    assert client.describe_vault(vaultName="from-the-console")["NumberOfArchives"] == 0
    follow(browser, browser.find_element(By.CSS_SELECTOR, "#start-inventory button"))
    assert "/console/vaults/from-the-console/jobs?started=" in browser.current_url
    assert browser.find_element(By.CSS_SELECTOR, "#jobs tr.job td:nth-child(2)").text == \
        "Inventory"
    server.seed_vault("phone", archives=60, seed=3)
    browser.set_window_size(390, 844)  # a phone
    for path, name in (("/console/", "08-phone-vaults"),
                       ("/console/vaults/phone", "09-phone-archives"),
                       ("/console/vaults/from-the-console/jobs", "10-phone-jobs"),
                       ("/console/status", "11-phone-status")):
        browser.get(server.endpoint_url + path)
        width = browser.execute_script("return window.innerWidth")
        scrolled = browser.execute_script("return document.documentElement.scrollWidth")
        assert scrolled <= width, f"{path} is wider than the screen ({scrolled} > {width})"
        shot(browser, name)
    corrupt = browser.find_element(
        By.XPATH, "//dl[@id='status']/div[dt='Archives whose bytes failed verification']")
    assert corrupt.find_element(By.TAG_NAME, "dd").text == "0"
    assert "should be zero" in corrupt.text
    stored = browser.find_element(By.XPATH, "//dl[@id='status']/div[dt='Archives stored']")
    total = sum(v["NumberOfArchives"] for v in client.list_vaults()["VaultList"])
    assert stored.find_element(By.TAG_NAME, "dd").text.startswith(f"{total:,} (")
    browser.set_window_size(1280, 900)
    browser.get(server.endpoint_url + "/console/vaults/from-the-console")
    # Deleting asks first; keeping it changes nothing.
    follow(browser, browser.find_element(By.ID, "delete-vault"))
    assert browser.current_url.endswith("/console/vaults/from-the-console/delete")
    follow(browser, browser.find_element(By.ID, "cancel-delete"))
    assert "from-the-console" in [v["VaultName"] for v in client.list_vaults()["VaultList"]]
    follow(browser, browser.find_element(By.ID, "delete-vault"))
    follow(browser, browser.find_element(By.CSS_SELECTOR, "#confirm-delete button"))
    assert browser.current_url.endswith("/console/")
    assert "from-the-console" not in [v["VaultName"] for v in client.list_vaults()["VaultList"]]


def _session(server: IcevaultServer, key_id: str, secret: str) -> urllib.request.OpenerDirector:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    form = opener.open(f"{server.endpoint_url}/console/sign-in").read().decode()
    token = re.search(r'name="token" value="([^"]+)"', form)
    assert token is not None
    opener.open(f"{server.endpoint_url}/console/sign-in", urllib.parse.urlencode({
        "token": token.group(1), "access_key_id": key_id,
        "secret_access_key": secret}).encode())
    return opener


def test_forms_need_their_token_and_users_see_only_what_they_may(
        server: IcevaultServer) -> None:
    root = _session(server, server.access_key_id, server.secret_access_key)
    # A form posted without its session's token (as from another site) changes nothing.
    for token in ("", "0" * 64):
        with pytest.raises(urllib.error.HTTPError) as refused:
            root.open(f"{server.endpoint_url}/console/vaults",
                      urllib.parse.urlencode({"csrf": token, "name": "forged"}).encode())
        assert refused.value.code == 403
    assert "forged" not in [v["VaultName"] for v in server.client().list_vaults()["VaultList"]]
    # A sign-in form without its own cookie is refused too.
    stranger = urllib.request.build_opener()
    with pytest.raises(urllib.error.HTTPError) as refused:
        stranger.open(f"{server.endpoint_url}/console/sign-in", urllib.parse.urlencode({
            "token": "x", "access_key_id": server.access_key_id,
            "secret_access_key": server.secret_access_key}).encode())
    assert refused.value.code == 403
    # A user allowed only to list vaults: no account page, no vault contents.
    def admin(*args: str) -> Any:
        result = subprocess.run(
            [sys.executable, "-m", "icevault", "admin", "--data-dir", str(server.data_dir),
             *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout) if result.stdout.strip() else None

    admin("create-user", "viewer")
    admin("put-user-policy", "--user", "viewer", "--policy-name", "list", "--policy-document",
          json.dumps({"Version": "2012-10-17", "Statement": [
              {"Effect": "Allow", "Action": "glacier:ListVaults", "Resource": "*"}]}))
    key = admin("create-access-key", "--user", "viewer")["AccessKey"]
    viewer = _session(server, key["AccessKeyId"], key["SecretAccessKey"])
    page = viewer.open(f"{server.endpoint_url}/console/").read().decode()
    assert "user/viewer" in page and "Users and keys" not in page
    for path in ("/console/account", "/console/vaults/photos"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            viewer.open(server.endpoint_url + path)
        assert refused.value.code == 403
        assert "not authorized" in refused.value.read().decode()
    # Disabling the key ends its console session at the next request.
    admin("disable-access-key", key["AccessKeyId"])
    time.sleep(1.2)  # the key cache's bound
    page = viewer.open(f"{server.endpoint_url}/console/").read().decode()
    assert 'id="sign-in"' in page


def test_console_details_a_newcomer_meets(server: IcevaultServer) -> None:
    client = server.client()
    root = _session(server, server.access_key_id, server.secret_access_key)
    # The first day: no empty chart box, the bytes stored in words.
    first_day = IcevaultServer()
    with first_day:
        fresh = _session(first_day, first_day.access_key_id, first_day.secret_access_key)
        first_day.client().create_vault(vaultName="day-one")
        first_day.client().upload_archive(vaultName="day-one", body=b"x" * 2048)
        page = fresh.open(f"{first_day.endpoint_url}/console/").read().decode()
        assert 'id="storage-chart"' not in page
        assert "2.0 KiB stored now" in page
    # Jobs: the newest first, each with its archive.
    client.create_vault(vaultName="ordered")
    archives = [client.upload_archive(vaultName="ordered", body=bytes([n]) * 10)["archiveId"]
                for n in range(3)]
    for archive_id in archives:
        client.initiate_job(vaultName="ordered", jobParameters={
            "Type": "archive-retrieval", "ArchiveId": archive_id})
        time.sleep(0.01)
    page = root.open(f"{server.endpoint_url}/console/vaults/ordered/jobs").read().decode()
    shown = re.findall(r'<td class="archive"><code class="id" title="([^"]+)"', page)
    assert shown == list(reversed(archives))
    # Unknown console paths are the console's own 404 page, in HTML.
    with pytest.raises(urllib.error.HTTPError) as missing:
        root.open(f"{server.endpoint_url}/console/no/such/page")
    assert missing.value.code == 404
    assert missing.value.headers["Content-Type"].startswith("text/html")
    assert "no such page" in missing.value.read().decode()


def test_a_user_who_may_not_list_vaults_opens_one_by_name(server: IcevaultServer) -> None:
    def admin(*args: str) -> Any:
        result = subprocess.run(
            [sys.executable, "-m", "icevault", "admin", "--data-dir", str(server.data_dir),
             *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout) if result.stdout.strip() else None

    server.client().create_vault(vaultName="team-a")
    admin("create-user", "scoped")
    admin("put-user-policy", "--user", "scoped", "--policy-name", "a", "--policy-document",
          json.dumps({"Version": "2012-10-17", "Statement": [
              {"Effect": "Allow", "Action": ["glacier:DescribeVault", "glacier:InitiateJob"],
               "Resource": "arn:aws:glacier:*:*:vaults/team-a"}]}))
    key = admin("create-access-key", "--user", "scoped")["AccessKey"]
    scoped = _session(server, key["AccessKeyId"], key["SecretAccessKey"])
    page = scoped.open(f"{server.endpoint_url}/console/").read().decode()
    assert 'id="no-list"' in page and "AccessDeniedException" not in page
    opened = scoped.open(f"{server.endpoint_url}/console/open?name=team-a")
    assert opened.url.endswith("/console/vaults/team-a")
    assert "<h1" in opened.read().decode()


def test_auth_off_console_takes_any_key() -> None:
    with IcevaultServer(auth="off") as open_server:
        session = _session(open_server, "x", "y")
        page = session.open(f"{open_server.endpoint_url}/console/").read().decode()
        assert 'id="vaults"' in page
        with pytest.raises(urllib.error.HTTPError) as missing:
            session.open(f"{open_server.endpoint_url}/console/nothing-here")
        assert missing.value.code == 404 and "Invalid account id" not in missing.value.read(
            ).decode()
