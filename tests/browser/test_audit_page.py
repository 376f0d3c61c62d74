"""Issue 26 in a real browser: an audit task looks like any other task to the annotator, in their queue and in the
workspace, and the read they submit from the page is what the audit counts."""

from __future__ import annotations

import pytest

from annotation.models import Task
from tests.browser.conftest import open_next_case, sign_in, workspace

pytestmark = pytest.mark.django_db(transaction=True)

ATTRIBUTES = """() => {
  const ws = document.querySelector('[data-page=workspace]')
  return { names: ws.getAttributeNames().sort(), text: document.body.innerText }
}"""


def _look(page, base_url: str, user: str) -> tuple[dict, str, int]:
    page.context.clear_cookies()
    sign_in(page, base_url, user)
    page.wait_for_selector("[data-page=queue]")
    queue_text = page.locator("[data-page=queue]").inner_text()
    open_next_case(page)
    return page.evaluate(ATTRIBUTES), queue_text, int(workspace(page, "task"))


def test_an_audit_task_looks_like_any_other_in_the_queue_and_the_workspace(world, page, live_server):
    from annotation.selectors.audit import audit_estimates
    from annotation.services import audit, queue

    audit.draw_audit(round=world.round, size=1, annotators=["a1"], worked=1)  # the top case is the queue's
    drawn = world.round.audit.cases.get().task
    ordinary = Task.objects.filter(round=world.round).exclude(pk=drawn.pk).exclude(case__name="big").get()
    queue.assign(annotator=world.users["a2"], task_ids=[ordinary.pk])  # a lead's ordinary assignment

    seen_ordinary, queue_ordinary, got = _look(page, live_server.url, "a2")
    assert got == ordinary.pk
    seen_audit, queue_audit, got = _look(page, live_server.url, "a1")
    assert got == drawn.pk
    assert seen_audit["names"] == seen_ordinary["names"]  # the same workspace, attribute for attribute
    for text in (seen_audit["text"], seen_ordinary["text"], queue_audit, queue_ordinary):
        assert "audit" not in text.lower()

    page.click("[data-action=confirm]")  # a1 confirms it from the page, as any case
    page.wait_for_selector("[data-page=queue] [data-flash]", timeout=20_000)
    assert audit_estimates(world.round)["read"] == 1
    assert not page.errors
