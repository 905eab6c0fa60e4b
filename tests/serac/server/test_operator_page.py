"""The operator page in a real headless browser (Debian's chromium through chromedriver): add
edits, search them, ask a question and see which edit answered, remove an edit."""

import shutil
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as shown
from selenium.webdriver.support.ui import WebDriverWait

from tests.serac.server.conftest import TOKEN, live_editor_server

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()) and not shutil.which("chromedriver"),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run installs them)",
)


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER if CHROMEDRIVER.exists() else shutil.which("chromedriver"))), options=options)
    yield driver
    driver.quit()


def test_an_operator_adds_searches_asks_and_removes_edits(serac_folder, browser):
    def wait_for(condition):
        # The page re-renders its table on every change: an element found a moment ago may be gone.
        return WebDriverWait(browser, 20, ignored_exceptions=(StaleElementReferenceException,)).until(condition)

    def rows() -> list[tuple[str, str]]:
        """(edit id, text) of each row of the table, read in one step."""
        return browser.execute_script("return [...document.querySelectorAll('#edits tr')].map(row => [row.dataset.editId, row.textContent])")

    def click(selector):
        wait_for(lambda _: browser.find_element(By.CSS_SELECTOR, selector).click() is None)

    def fill(element_id, value):
        field = browser.find_element(By.ID, element_id)
        field.clear()
        field.send_keys(value)

    with live_editor_server(serac_folder) as (url, editor):
        browser.get(url)
        wait_for(shown.text_to_be_present_in_element((By.ID, "model"), "serac"))
        wait_for(shown.text_to_be_present_in_element((By.ID, "status"), "Authorization"))  # no token yet: the list is refused
        fill("token", TOKEN + Keys.TAB)  # leaving the field reloads the list with the token
        wait_for(shown.text_to_be_present_in_element((By.ID, "total"), "(0)"))

        for prompt, target in (("Who wrote Hamlet?", "Ada Lovelace"), ("Who painted the Mona Lisa?", "Grace Hopper")):
            fill("prompt", prompt)
            fill("target", target)
            click("#add")
            wait_for(lambda _, prompt=prompt: any(prompt in text for _, text in rows()))
        assert [edit.prompt for edit in editor.stored_edits()] == ["Who wrote Hamlet?", "Who painted the Mona Lisa?"]

        fill("search", "mona")
        click("#search-button")
        wait_for(lambda _: len(shown_rows := rows()) == 1 and "Grace Hopper" in shown_rows[0][1])

        hamlet_id = editor.stored_edits()[0].id
        fill("question", "Who wrote Hamlet?")
        click("#ask")
        wait_for(shown.text_to_be_present_in_element((By.ID, "answer"), f"answered by edit {hamlet_id}"))
        fill("question", "Where is Paris?")
        click("#ask")
        wait_for(shown.text_to_be_present_in_element((By.ID, "answer"), "answered by the base model"))

        fill("search", "")
        click("#search-button")
        wait_for(lambda _: len(rows()) == 2)
        click(f'#edits tr[data-edit-id="{hamlet_id}"] .remove')
        wait_for(lambda _: len(shown_rows := rows()) == 1 and "Hamlet" not in shown_rows[0][1])
        assert [edit.prompt for edit in editor.stored_edits()] == ["Who painted the Mona Lisa?"]
