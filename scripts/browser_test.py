"""The sidebar page in a real headless Chromium, against `scrm up` and the fake WeChat.

Started by scripts/browser.sh, which runs both servers; this script prepares the tenant through
the admin API and the fake's developer endpoints, then drives the page with Selenium:

1. registers the fake's WeCom corp (callbacks, customer-contact secret) and its self-built
   agent app to tenant `demo` (`POST /admin/v1/apps`);
2. has the fake send the `add_external_contact` callbacks of a customer added by the rep the
   fake's sign-in page signs in by default (its first rep), and of another customer added by
   another rep; makes a tag group and a tag;
3. in Chromium at the WeCom sidebar's width: opens `/sidebar/?corp_id=&agent_id=&external_userid=`,
   which goes through the WeCom OAuth sign-in and back; checks the rep is signed in, the card
   shows the customer's name and stage and fits the width; offers the tenant's tag in the picker,
   adds it and sees it on the card;
   adds a note and sees it in the timeline and the notes; moves the stage with a reason; removes
   the tag; opens the other rep's customer and sees the 403 `not_your_customer` shown; opens the
   inbox;
4. as inside WeCom (its JS-SDK stood in for by a stub that records the calls): opens the page
   without `external_userid`, checks `wx.config` and `wx.agentConfig` got signatures the fake
   verifies against its live tickets, and that the card of the customer `getCurExternalContact`
   named is shown.

Exits non-zero at the first failed check, printing the page's text and the browser's console.

Usage: browser_test.py --gateway URL --fake URL --data-dir DIR
"""

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_SECS = 20


# Stands in for WeCom's JS-SDK (`%s`: the external_userid getCurExternalContact answers).
WX_STUB = """
window.__wx = {calls: []};
window.wx = {
  config(c) { window.__wx.calls.push(['config', c]); },
  ready(f) { setTimeout(f, 0); },
  error(f) {},
  agentConfig(c) { window.__wx.calls.push(['agentConfig', c]); setTimeout(() => c.success({}), 0); },
  invoke(name, args, cb) {
    window.__wx.calls.push(['invoke', name]);
    setTimeout(() => cb({err_msg: name + ':ok', userId: %s}), 0);
  },
};
"""


class CheckFailed(Exception):
    pass


def http(method, url, token=None, body=None):
    """(status, parsed JSON or None) of one request."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Accept", "application/json")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, text = resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text


def expect(status, answer, wanted, what):
    if status not in wanted:
        raise CheckFailed(f"{what}: HTTP {status}: {answer}")
    return answer


def until(what, probe, secs=WAIT_SECS):
    """The first truthy answer of `probe`, polled for `secs` seconds."""
    deadline = time.monotonic() + secs
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.2)
    raise CheckFailed(f"{what}: not within {secs} s (last: {last})")


class Setup:
    """The tenant's apps, the customers and a tag, through the admin API and the fake."""

    def __init__(self, gateway, fake, token):
        self.gw, self.fake, self.token = gateway, fake, token

    def admin(self, method, path, body=None, wanted=(200, 201)):
        status, answer = http(method, f"{self.gw}/admin/v1{path}", self.token, body)
        return expect(status, answer, wanted, f"{method} /admin/v1{path}")

    def register_apps(self):
        _, apps = http("GET", f"{self.fake}/fake/apps")
        contact = next(a for a in apps if a["name"] == "wecom-contact")
        agent = next(a for a in apps if a["name"] == "wecom-agent")
        self.admin("POST", "/apps", {
            "kind": "wecom", "app_id": contact["appid"], "name": "Fake corp",
            "token": contact["token"], "encoding_aes_key": contact["encoding_aes_key"],
            "secret": contact["secret"],
        })
        self.admin("POST", "/apps", {
            "kind": "wecom_agent", "app_id": agent["appid"], "agent_id": agent["agent_id"],
            "secret": agent["secret"], "name": "Sidebar",
        })
        return contact["appid"], agent["agent_id"]

    def customers(self):
        """The rep the sign-in page picks, a customer they follow, another rep's customer."""
        _, pop = http("GET", f"{self.fake}/fake/population")
        rep = pop["reps"][0]["userid"]

        def followed_by(user, userid):
            return any(f["userid"] == userid for f in user["follows"])

        mine = next(u for u in pop["users"] if followed_by(u, rep))
        theirs = next(u for u in pop["users"] if u["follows"] and not followed_by(u, rep))
        return rep, mine, theirs["follows"][0]["userid"], theirs

    def add_contact(self, userid, external_userid, state):
        q = urllib.parse.urlencode({
            "gateway": self.gw, "userid": userid, "external_userid": external_userid,
            "state": state,
        })
        status, answer = http("POST", f"{self.fake}/fake/send/wecom-add?{q}")
        expect(status, answer, (200,), "the fake's add_external_contact")
        if answer.get("status") != 200:
            raise CheckFailed(f"the gateway refused the callback: {answer}")

    def profile(self, corp, external_userid):
        q = urllib.parse.urlencode({
            "kind": "wecom_external_userid", "namespace": corp, "value": external_userid,
        })
        status, p = http("GET", f"{self.gw}/admin/v1/customers/by-identifier?{q}", self.token)
        return p if status == 200 else None

    def ready_customer(self, corp, external_userid):
        """Waits until the customer has a name (identity) and a stage (scoring)."""
        def probe():
            p = self.profile(corp, external_userid)
            if not p or not p["fields"].get("contact.name"):
                return None
            status, view = http("GET", f"{self.gw}/admin/v1/customers/{p['id']}", self.token)
            stage = (view or {}).get("scores", {}) if status == 200 else {}
            stage = stage.get("stage") if isinstance(stage, dict) else None
            return (p["fields"]["contact.name"], stage) if stage else None
        return until(f"customer {external_userid} in identity and scoring", probe)

    def tag(self):
        suffix = str(int(time.time() * 1000))[-6:]
        group = self.admin("POST", "/tag-groups", {"name": f"意向 Intent {suffix}"})
        tag = self.admin("POST", "/tags", {"group_id": group["id"], "name": f"想要演示 Demo {suffix}"})
        return tag["id"], tag["name"]


class Page:
    """The sidebar page in Chromium."""

    def __init__(self, width):
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--no-first-run", "--disable-extensions", "--lang=zh-CN",
                    f"--window-size={width},900"):
            opts.add_argument(arg)
        opts.set_capability("goog:loggingOptions", {"browser": "ALL"})
        self.d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        self.d.set_page_load_timeout(30)
        # A desktop window is at least 500 px wide: emulate the narrow sidebar's viewport.
        self.width = width
        self.viewport(900)

    def viewport(self, height):
        self.d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": self.width, "height": height, "deviceScaleFactor": 1,
            "mobile": self.width < 600,
        })

    def quit(self):
        try:
            self.d.quit()
        except WebDriverException:
            pass

    def wait(self, what, condition, secs=WAIT_SECS):
        try:
            # The page may be between two loads (the sign-in's redirects) while it is polled.
            return WebDriverWait(
                self.d, secs, poll_frequency=0.1,
                ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
            ).until(condition)
        except TimeoutException:
            raise CheckFailed(f"{what}: not within {secs} s") from None

    def css(self, selector):
        return self.d.find_element(By.CSS_SELECTOR, selector)

    def click(self, element):
        """Clicks `element` as a person would, after scrolling it to the middle of the window."""
        self.d.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        element.click()

    def text_of(self, selector):
        found = self.d.find_elements(By.CSS_SELECTOR, selector)
        return found[0].text if found else ""

    def visible(self, selector):
        found = self.d.find_elements(By.CSS_SELECTOR, selector)
        return bool(found) and found[0].is_displayed()

    def no_error(self):
        if self.visible("#error"):
            raise CheckFailed(f"the page shows an error: {self.text_of('#error')}")

    def signed_in_or_refused(self):
        """True once the page says who is signed in; the sign-in's error answer if it ended on one."""
        if "/sidebar/v1/oauth/" in self.d.current_url:
            try:
                answer = json.loads(self.text_of("body") or "null")
            except ValueError:
                return False
            return answer if isinstance(answer, dict) and answer.get("code") else False
        return self.css("#me").get_attribute("data-state") == "signed-in"

    def sign_in(self, url):
        """Opens `url` and waits for the WeCom sign-in to bring the page back signed in. A sign-in
        the gateway answered with a transient error (503: try again) is tried once more, saying
        so; any other refusal fails."""
        for attempt in (1, 2):
            self.d.get(url)
            got = self.wait("signed in", lambda _: self.signed_in_or_refused())
            if got is True:
                return
            if attempt == 1 and got.get("code", "").endswith("_unavailable"):
                print(f"note: the sign-in answered {got}; trying once more", file=sys.stderr)
                continue
            raise CheckFailed(f"the sign-in was refused: {got}")

    def shot(self, directory, name):
        """Saves the whole page as `{directory}/{name}.png` when a directory is given."""
        if not directory:
            return
        height = self.d.execute_script("return document.documentElement.scrollHeight")
        self.viewport(max(900, height))
        self.d.save_screenshot(f"{directory}/{name}.png")
        self.viewport(900)

    def dump(self):
        try:
            print(f"--- page at {self.d.current_url}", file=sys.stderr)
            print(self.d.find_element(By.TAG_NAME, "body").text[:3000], file=sys.stderr)
            print("--- browser console", file=sys.stderr)
            for entry in self.d.get_log("browser"):
                print(f"{entry.get('level')}: {entry.get('message')}", file=sys.stderr)
        except WebDriverException as e:
            print(f"(no page to show: {e})", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gateway", required=True)
    ap.add_argument("--fake", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--width", type=int, default=400, help="window width (WeCom's sidebar)")
    ap.add_argument("--screenshots", help="a directory to save the page's screenshots in")
    args = ap.parse_args()
    gw = args.gateway.rstrip("/")
    with open(f"{args.data_dir}/admin.token", encoding="utf-8") as f:
        token = f.read().strip()

    passed = 0
    page = None
    step = "setup"

    def ok(name):
        nonlocal passed, step
        passed += 1
        print(f"ok {passed} - {name}", flush=True)
        step = "after " + name

    try:
        setup = Setup(gw, args.fake.rstrip("/"), token)
        corp, agent_id = setup.register_apps()
        rep, mine, other_rep, theirs = setup.customers()
        setup.add_contact(rep, mine["external_userid"], "booth_7")
        setup.add_contact(other_rep, theirs["external_userid"], "booth_8")
        tag_id, tag_name = setup.tag()
        name, stage = setup.ready_customer(corp, mine["external_userid"])
        setup.ready_customer(corp, theirs["external_userid"])
        ok(f"setup: apps registered, {mine['external_userid']} added by {rep}, tag {tag_id}")

        page = Page(args.width)
        d = page.d
        base_q = {"corp_id": corp, "agent_id": str(agent_id)}
        url = f"{gw}/sidebar/?" + urllib.parse.urlencode(
            {**base_q, "external_userid": mine["external_userid"]})
        step = "sign-in"
        page.sign_in(url)
        if page.css("#me").get_attribute("data-userid") != rep:
            raise CheckFailed(f"signed in as {page.text_of('#me')}, not {rep}")
        if not d.current_url.startswith(f"{gw}/sidebar/?") or "external_userid=" not in d.current_url:
            raise CheckFailed(f"not back on the page after the sign-in: {d.current_url}")
        ok(f"signed in through the WeCom OAuth as {rep}")

        step = "card"
        page.wait("the card", lambda _: page.visible("#card") and page.text_of("#c-name"))
        page.no_error()
        if page.text_of("#c-name") != name:
            raise CheckFailed(f"card name {page.text_of('#c-name')!r}, expected {name!r}")
        if page.text_of("#c-stage") != stage:
            raise CheckFailed(f"card stage {page.text_of('#c-stage')!r}, expected {stage!r}")
        if "booth_7" not in page.text_of("#c-source") or rep in page.text_of("#c-others"):
            raise CheckFailed(f"the source or the other reps are wrong: {page.text_of('#card')}")
        width, overflow = d.execute_script(
            "const e = document.documentElement; return [e.clientWidth, e.scrollWidth - e.clientWidth]")
        if overflow > 0:
            raise CheckFailed(f"the card is {overflow}px wider than a {width}px window")
        page.shot(args.screenshots, "card")
        ok(f"the card shows {name!r} at stage {stage!r}, fitting {width}px")

        step = "add a tag"
        page.wait("the tenant's tag offered in the picker",
                  lambda _: any(o.get_attribute("value") == tag_id
                                for o in d.find_elements(By.CSS_SELECTOR, "#tag-known option")))
        field = page.css("#tag-id")
        field.clear()
        field.send_keys(tag_id)
        page.click(page.css("#tag-form button[type=submit]"))
        page.wait("the tag on the card",
                  lambda _: tag_name in page.text_of(f"#c-tags [data-tag-id='{tag_id}']"))
        page.no_error()
        ok(f"tag {tag_name!r} added from the card")

        step = "add a note"
        text = f"想要下周演示 / Wants a demo next week {int(time.time())}"
        Select(page.css("#note-type")).select_by_value("call")
        page.css("#note-text").send_keys(text)
        page.click(page.css("#note-form button[type=submit]"))
        page.wait("the note in the timeline",
                  lambda _: any(text in li.text for li in d.find_elements(
                      By.CSS_SELECTOR, "#c-timeline li[data-type='note.added']")))
        page.wait("the note in the notes", lambda _: text in page.text_of("#c-notes"))
        page.no_error()
        ok("note added, in the timeline and the notes")

        step = "move the stage"
        moves = d.find_elements(By.CSS_SELECTOR, "#c-moves button[data-stage]")
        if not moves:
            raise CheckFailed("no allowed moves offered")
        to = moves[0].get_attribute("data-stage")
        page.click(moves[0])
        page.wait("the reason prompt", lambda _: page.visible("#move-form"))
        page.css("#move-reason").send_keys("电话确认有需求 / qualified on the call")
        page.click(page.css("#move-form button[type=submit]"))
        page.wait(f"the stage {to}", lambda _: page.text_of("#c-stage") == to)
        page.no_error()
        ok(f"stage moved {stage} -> {to} with a reason")

        step = "remove the tag"
        page.click(page.css(f"#c-tags [data-tag-id='{tag_id}'] button.remove"))
        page.wait("the tag gone",
                  lambda _: not d.find_elements(By.CSS_SELECTOR, f"#c-tags [data-tag-id='{tag_id}']"))
        page.no_error()
        page.shot(args.screenshots, "after-actions")
        ok("tag removed from the card")

        step = "another rep's customer"
        d.get(f"{gw}/sidebar/?" + urllib.parse.urlencode(
            {**base_q, "external_userid": theirs["external_userid"]}))
        page.wait("the refusal shown", lambda _: page.visible("#error"))
        code = page.css("#error").get_attribute("data-code")
        shown = page.text_of("#error")
        if code != "not_your_customer" or "403" not in shown:
            raise CheckFailed(f"expected 403 not_your_customer shown, got {code!r}: {shown}")
        if page.visible("#card"):
            raise CheckFailed("another rep's customer's card is shown")
        page.shot(args.screenshots, "refused")
        ok(f"{other_rep}'s customer refused visibly (403 not_your_customer)")

        step = "the inbox"
        page.click(page.css("#show-inbox"))
        page.wait("the inbox", lambda _: page.visible("#inbox") and page.text_of("#inbox-list"))
        page.no_error()
        if page.css("#show-inbox").get_attribute("aria-expanded") != "true":
            raise CheckFailed("the inbox button does not say it is open")
        ok("the inbox opens")

        step = "inside WeCom"
        # WeCom's JS-SDK stood in for: records what the page configures, names the customer.
        d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": WX_STUB % json.dumps(
            mine["external_userid"])})
        d.get(f"{gw}/sidebar/?" + urllib.parse.urlencode(base_q))
        page.wait("the card of the chat's customer",
                  lambda _: page.visible("#card") and page.text_of("#c-name") == name)
        page.no_error()
        calls = d.execute_script("return window.__wx.calls")
        kinds = [c[0] for c in calls]
        if kinds != ["config", "agentConfig", "invoke"]:
            raise CheckFailed(f"JS-SDK calls {kinds}")
        signed = d.current_url.split("#")[0]
        # wx.config is signed with the corp's ticket, wx.agentConfig with the app's.
        for (_, cfg), kind in zip(calls[:2], ("jsapi", "agent_config")):
            if cfg.get("jsApiList") != ["getCurExternalContact"]:
                raise CheckFailed(f"{kind} config asks for {cfg.get('jsApiList')}")
            q = urllib.parse.urlencode({
                "url": signed, "noncestr": cfg["nonceStr"], "timestamp": str(cfg["timestamp"]),
                "signature": cfg["signature"],
            })
            _, verdict = http("GET", f"{setup.fake}/fake/jssdk/verify?{q}")
            if verdict != {"valid": True, "kind": kind}:
                raise CheckFailed(f"the {kind} signature does not verify: {verdict} for {cfg}")
        if calls[1][1].get("agentid") != agent_id or calls[0][1].get("appId") != corp:
            raise CheckFailed(f"configured for another app: {calls[:2]}")
        ok("inside WeCom: wx.config and wx.agentConfig signed for the page, the chat's customer shown")
    except Exception as e:  # noqa: BLE001 - every failure is reported the same way
        print(f"not ok - {step}: {e}", file=sys.stderr)
        if page:
            page.dump()
        print(f"browser: {passed} passed, 1 failed")
        return 1
    finally:
        if page:
            page.quit()
    print(f"browser: {passed} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
