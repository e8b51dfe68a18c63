#!/usr/bin/env python3
"""Drives radroute's web console in a real browser (Debian's Chromium, headless, through
Playwright for Python) for tests/tests/e2e/console.rs, which starts radroute, Orthanc and the
data first and checks the deliveries afterwards.

  console_test.py --url http://127.0.0.1:PORT --token TOKEN --expect EXPECT.json
                  --retry-destination NAME --screenshots DIR

EXPECT.json: {"instances": [{"accession": ..., "label": ... or null}], "dead": N}

Checks, in order: an unauthenticated request gets the login page and no data; the token logs
in; the overview counts the dead letters; every instance is listed with the label radroute
wrote; an instance page shows the model input image (224x224, loaded) and the score bars; the
destinations page flags the failing destination; the queue page retries the destination's
dead letters; the rule tester shows the decision for a chosen instance; no script injected
through header text ever ran (no dialog). Prints one line per check; exits 1 on the first
failure (with a screenshot of the page named failure.png).
"""
import argparse
import json
import os
import sys

from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("RADROUTE_CHROMIUM", "/usr/bin/chromium")
# The flags known to work here as root, in a closed network (no background connections).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
TIMEOUT_MS = 20_000


def wait_js(page, js):
    """Waits for `js` to be true; False after the timeout (so `check` reports it)."""
    try:
        page.wait_for_function(js)
        return True
    except Exception as e:  # playwright's TimeoutError
        print(f"     wait failed: {e}", flush=True)
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--expect", required=True)
    ap.add_argument("--retry-destination", required=True)
    ap.add_argument("--screenshots", required=True)
    args = ap.parse_args()
    expect = json.load(open(args.expect))
    os.makedirs(args.screenshots, exist_ok=True)
    shot = lambda page, name: page.screenshot(path=os.path.join(args.screenshots, name), full_page=True)
    dialogs = []

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        posts = []
        page.on("response", lambda r: posts.append(f"{r.request.method} {r.url} -> {r.status}")
                if r.request.method == "POST" else None)

        def check(ok, what):
            if not ok:
                shot(page, "failure.png")
                print(f"FAIL {what} (at {page.url})", flush=True)
                print("POST requests:\n" + "\n".join(posts), flush=True)
                print(page.content()[:4000], flush=True)
                browser.close()
                sys.exit(1)
            print(f"ok   {what}", flush=True)

        first = expect["instances"][0]["accession"]
        # 1. No session: the login page, not data.
        page.goto(f"{args.url}/instances?accession={first}")
        check("/login" in page.url, "an unauthenticated page request is sent to /login")
        check(page.locator("input[type=password]").count() == 1, "the login page asks for the token")
        body = page.locator("body").inner_text()
        check(first not in body and "Doe" not in body and page.locator("table").count() == 0,
              "the login page shows no instance data")
        page.fill("input[name=token]", "wrong")
        page.click("button[type=submit]")
        check("Wrong token" in page.content(), "a wrong token is refused")
        shot(page, "login.png")
        page.fill("input[name=token]", args.token)
        page.click("button[type=submit]")
        page.wait_for_url(f"**/instances?accession={first}")
        check(first in page.content(), "the token logs in and returns to the requested page")
        cookies = context.cookies()
        session = [c for c in cookies if c["name"] == "radroute_session"]
        check(len(session) == 1 and session[0]["httpOnly"] and session[0]["sameSite"] == "Strict",
              "the session cookie is HttpOnly and SameSite=Strict")

        # 2. Overview.
        page.goto(f"{args.url}/")
        dead = page.locator("#dead-letters .v").inner_text().strip()
        check(dead == str(expect["dead"]), f"the overview counts {expect['dead']} dead letters (shows {dead})")
        check(page.locator("#model .v").inner_text().strip() != "none", "the overview names the model")
        shot(page, "overview.png")

        # 3. Instances with their labels.
        page.goto(f"{args.url}/instances")
        rows = page.locator("#instances tr")
        check(rows.count() >= len(expect["instances"]) + 1, "every instance is listed")
        for inst in expect["instances"]:
            row = page.locator("#instances tr", has_text=inst["accession"])
            check(row.count() == 1, f"instance {inst['accession']} is listed")
            label = row.locator("td.label").inner_text().strip()
            want = inst["label"] or "none"
            check(label == want, f"instance {inst['accession']} shows label {want} (shows {label})")
        shot(page, "instances.png")

        # 4. One instance: the model input and the scores.
        labelled = next(i for i in expect["instances"] if i["label"])
        page.locator("#instances tr", has_text=labelled["accession"]).locator("a").first.click()
        page.wait_for_url("**/instances/*")
        img = page.locator("img.model-input")
        img.wait_for()
        page.wait_for_function("() => { const i = document.querySelector('img.model-input'); return i && i.complete && i.naturalWidth > 0; }")
        size = page.evaluate("() => { const i = document.querySelector('img.model-input'); return [i.naturalWidth, i.naturalHeight]; }")
        check(size == [224, 224], f"the model input image is shown at 224x224 (got {size})")
        check(page.locator("#scores .bar").count() >= 2, "the scores are shown as bars")
        check(labelled["label"] in page.locator("#decision").inner_text(), "the decision shows the label")
        instance_url = page.url
        shot(page, "instance.png")

        # 5. Destinations: the failing one is flagged.
        page.goto(f"{args.url}/destinations")
        row = page.locator(f"#destinations tr[id='{args.retry_destination}']")
        check(row.count() == 1, "the failing destination is listed")
        check("never reached" in row.inner_text(), "the failing destination is flagged as never reached")
        pacs_row = page.locator("#destinations tr", has_text="pacs")
        pacs_row.locator("button", has_text="C-ECHO now").click()
        page.wait_for_function("() => [...document.querySelectorAll('#destinations .result')].some(r => r.innerText.includes('C-ECHO ok'))")
        check(True, "C-ECHO now answers for the working destination")
        shot(page, "destinations.png")

        # 6. Queue: retry the failing destination's dead letters.
        page.goto(f"{args.url}/queue")
        shot(page, "queue.png")
        group = page.locator("#dead-by-destination tr", has_text=args.retry_destination)
        check(group.count() == 1, "the dead letters are grouped by destination")
        group.locator("button", has_text="Retry").click()
        check(wait_js(page, f"() => document.querySelector('#action-result').innerText.includes('retry: {expect['dead']} done')"),
              f"retry of {expect['dead']} dead letters from the console")

        # 7. Rule tester on a chosen instance.
        page.goto(f"{args.url}/rules")
        instance_id = instance_url.rstrip("/").split("/")[-1]
        page.select_option("select[name=instance]", instance_id)
        page.click("form[action='/rules'] button[type=submit]")
        page.wait_for_url("**/rules?instance=*")
        result = page.locator("#rule-test-result").inner_text()
        check(labelled["label"] in result, "the rule tester shows the label of the chosen instance")
        check("pacs" in result and args.retry_destination in result, "the rule tester shows the destinations")
        check("nothing was sent" in result, "the rule tester says nothing was sent")
        shot(page, "rules.png")

        # 8. Back to the overview once the retried jobs went: the operator actions are listed.
        page.goto(f"{args.url}/")
        page.wait_for_function("() => document.querySelector('#operator-actions').innerText.includes('retry')")
        check(True, "the overview lists the operator's retry")
        check(not dialogs, f"no injected script ran (dialogs: {dialogs})")
        browser.close()
    print("console browser test passed", flush=True)


if __name__ == "__main__":
    main()
