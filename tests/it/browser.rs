//! The "E-mail scripts" page in a real browser (docs/api.md, "The page"):
//! Debian's headless Chromium driven through chromedriver, one session
//! for every step — sign in, the green state box, Block confirmed, mail
//! from PHP held and counted, Unblock and the mail at the real smtp-sink,
//! Purge, Change recipient, the mails in error, the keyboard, the page in
//! French when the browser asks for it — with screenshots at 360, 1280 and
//! 1920 px kept in target/browser-screenshots/ and no element wider than the
//! viewport.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::apiutil::{env_with_api, start_api, token};
use crate::sink::Sink;
use crate::util::*;
use crate::webdriver::Browser;

const WAIT: Duration = Duration::from_secs(30);
const DSN: &str = include_str!("../fixtures/bounces/postfix-local-unknown.eml");

/// Where the screenshots are kept: target/browser-screenshots/.
fn shots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("browser-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir
}

/// PHP's mail() from the script `name` (PHP records it in
/// X-PHP-Originating-Script), through the real sendmail.
fn php_mail(env: &Env, name: &str, to: &str, subject: &str) {
    php_script(
        env,
        name,
        &format!("echo mail(\"{to}\", \"{subject}\", \"hello\") ? \"sent\" : \"failed\";"),
    );
}

/// Every element that sticks out of the viewport sideways, and whether
/// the page scrolls sideways at all.
const OVERFLOW: &str = r#"
const w = window.innerWidth, bad = [];
if (document.documentElement.scrollWidth > w) bad.push('page scrollWidth ' + document.documentElement.scrollWidth + ' > ' + w);
for (const el of document.querySelectorAll('body *')) {
  const r = el.getBoundingClientRect();
  if (r.width === 0 && r.height === 0) continue;
  if (r.left < -0.5 || r.right > w + 0.5) bad.push(el.tagName + '#' + el.id + '.' + el.className + ' ' + Math.round(r.left) + '..' + Math.round(r.right));
}
return bad;"#;

/// At `width` px: nothing sticks out sideways, as the page is and with
/// every part shown on demand opened (the graph's table); the screenshot
/// `name` is of the page as it is.
fn check_width(b: &Browser, width: u32, name: &str) {
    b.viewport(width, 800);
    b.wait(
        &format!("the layout at {width} px"),
        // The graph is redrawn for its new width.
        &format!(
            "const c = document.getElementById('chart'), s = c.querySelector('svg'); \
             return window.innerWidth === {width} && (!s || c.clientWidth < 240 || \
             Math.abs(s.width.baseVal.value - c.clientWidth) < 2)"
        ),
    );
    let bad = b.js(OVERFLOW, json!([]));
    assert_eq!(
        bad,
        json!([]),
        "{name}: elements outside a {width} px viewport"
    );
    let png = b.screenshot();
    std::fs::write(shots().join(format!("{name}.png")), &png).expect("write screenshot");
    b.js(
        "for (const d of document.querySelectorAll('details')) d.open = true; return true",
        json!([]),
    );
    let bad = b.js(OVERFLOW, json!([]));
    b.js(
        "for (const d of document.querySelectorAll('details')) d.open = false; return true",
        json!([]),
    );
    assert_eq!(
        bad,
        json!([]),
        "{name}, opened: elements outside a {width} px viewport"
    );
}

/// The state box's state (its data-state) is `state`.
fn state_is(b: &Browser, state: &str) {
    b.wait(
        &format!("the state {state}"),
        &format!("return document.getElementById('state-box').dataset.state === '{state}'"),
    );
}

/// Press an action button and confirm it in the dialog.
fn act(b: &Browser, button: &str) {
    b.js(
        "document.getElementById('announce').textContent = ''; return true",
        json!([]),
    );
    b.click(button);
    b.wait(
        "the confirmation dialog",
        "return document.getElementById('confirm').open",
    );
    b.click("#confirm-ok");
    b.wait(
        "the request to be sent",
        "return document.getElementById('announce').textContent === 'Your request has been sent.'",
    );
}

fn refresh(b: &Browser) {
    b.click("#refresh");
}

/// The three buttons' aria-disabled, as (block, unblock, purge) enabled.
fn enabled(b: &Browser) -> Value {
    b.js(
        "return ['do-block', 'do-unblock', 'do-purge'].map(id => document.getElementById(id).getAttribute('aria-disabled') === 'false')",
        json!([]),
    )
}

#[test]
fn the_page_in_a_real_browser() {
    let sink = Sink::start();
    let (env, port) = env_with_api(sink.port(), "");
    let _api = start_api(&env, port);
    let admin = token(&env, "ops", "admin");
    let url = format!("http://127.0.0.1:{port}/");
    let b = Browser::start();

    // Sign in with an admin token, pick the account.
    b.go(&url);
    b.wait(
        "the sign-in form",
        "return !document.getElementById('signin').hidden",
    );
    assert_eq!(
        b.js("return document.activeElement.id", json!([])),
        "token",
        "focus on the token field"
    );
    b.keys("#token", "sm_wrong\u{E007}");
    b.wait(
        "the refusal",
        "return document.getElementById('signin-error').textContent !== ''",
    );
    b.js(
        "document.getElementById('token').value = ''; return true",
        json!([]),
    );
    b.keys("#token", &format!("{admin}\u{E007}"));
    b.wait(
        "the account picker",
        "return !document.getElementById('picker').hidden",
    );
    b.keys("#search", &format!("{}\u{E007}", me()));
    b.wait(
        "the account's page",
        "return !document.getElementById('panel').hidden",
    );

    // The green state box; only Block can be pressed.
    state_is(&b, "ok");
    assert!(
        b.js(
            "return document.getElementById('state-box').classList.contains('sending')",
            json!([])
        ) == true
    );
    assert!(b.text("#state-text").starts_with("Sending"));
    assert_eq!(enabled(&b), json!([true, false, false]));

    // The keyboard: Enter on Block opens the dialog, Escape cancels it and
    // the focus is back on Block; nothing happened.
    b.keys("#do-block", "\u{E007}");
    b.wait(
        "the dialog",
        "return document.getElementById('confirm').open",
    );
    assert_eq!(
        b.js("return document.activeElement.id", json!([])),
        "confirm-ok"
    );
    b.keys("#confirm-ok", "\u{E00C}");
    b.wait(
        "the dialog to close",
        "return !document.getElementById('confirm').open",
    );
    assert_eq!(
        b.js("return document.activeElement.id", json!([])),
        "do-block"
    );
    state_is(&b, "ok");

    // Block, confirmed: red.
    act(&b, "#do-block");
    state_is(&b, "ko");
    assert!(
        b.js(
            "return document.getElementById('state-box').classList.contains('blocked')",
            json!([])
        ) == true
    );
    assert_eq!(enabled(&b), json!([false, true, true]));

    // Mail from PHP is held; the page counts it and names the script.
    php_mail(&env, "contact.php", "ann@example.com", "first");
    refresh(&b);
    b.wait(
        "1 held",
        "return document.getElementById('held-count').textContent === '1'",
    );
    php_mail(&env, "contact.php", "bob@example.com", "second");
    refresh(&b);
    b.wait(
        "2 held",
        "return document.getElementById('held-count').textContent === '2'",
    );
    // PHP writes the script as UID:NAME (X-PHP-Originating-Script).
    let script = format!("{}:contact.php", my_uid());
    assert!(b.text("#held-scripts").contains(&script));
    // 72 h minus the seconds the test took.
    assert_eq!(
        b.text("#held-left"),
        "2d 23h",
        "the time left before expiry"
    );
    assert!(sink.messages().is_empty());
    // The blocked page with mail held, as README shows it.
    check_width(&b, 1280, "page-1280-blocked");
    check_width(&b, 360, "page-360-blocked");
    b.viewport(1280, 900);

    // Unblock: the held mail goes out.
    act(&b, "#do-unblock");
    state_is(&b, "ok");
    sink.wait_for(2, WAIT);
    wait_until(WAIT, || env.count("state = 'sent'") == 2);
    refresh(&b);
    b.wait(
        "2 sent",
        "return document.getElementById('sent-total').textContent === '2'",
    );
    assert_eq!(b.text("#held-count"), "0");

    // Purge: block, one more held, purged; nothing more reaches the sink.
    act(&b, "#do-block");
    state_is(&b, "ko");
    php_mail(&env, "contact.php", "cy@example.com", "third");
    refresh(&b);
    b.wait(
        "1 held",
        "return document.getElementById('held-count').textContent === '1'",
    );
    act(&b, "#do-purge");
    state_is(&b, "ok");
    assert_eq!(b.text("#held-count"), "0");
    assert_eq!(env.count("1"), 2, "the purged mail is gone");
    assert_eq!(sink.messages().len(), 2);

    // Change recipient: a bad address is refused in the dialog, a good one shown.
    b.click("#change-recipient");
    b.wait(
        "the recipient dialog",
        "return document.getElementById('recipient').open",
    );
    b.keys("#recipient-input", "not an address");
    b.click("#recipient-ok");
    b.wait("the refusal", "return document.getElementById('recipient-error').textContent.includes('not a valid report recipient')");
    b.js(
        "document.getElementById('recipient-input').value = ''; return true",
        json!([]),
    );
    b.keys("#recipient-input", "webmaster@example.org");
    b.click("#recipient-ok");
    b.wait(
        "the new recipient",
        "return document.getElementById('report-to').textContent === 'webmaster@example.org'",
    );
    assert_eq!(
        b.js("return document.activeElement.id", json!([])),
        "change-recipient"
    );

    // The mails in error: a DSN comes back for the first message.
    let qid: String = env
        .db()
        .query_row(
            "SELECT qid FROM messages WHERE subject = 'first'",
            [],
            |r| r.get(0),
        )
        .expect("the first message");
    let dsn = DSN
        .replace("6740A1B2C3D4E5F7", &qid)
        .replace("nosuchuser@test.example", "ann@example.com");
    assert_ok(&run_with_input(
        env.scriptmail()
            .arg("bounce")
            .arg(format!("bounces+{qid}@node1.example.net")),
        dsn.as_bytes(),
    ));
    refresh(&b);
    b.wait(
        "1 in error",
        "return document.getElementById('error-total').textContent === '1'",
    );
    assert!(b.js("return document.getElementById('errors').hidden", json!([])) == true);
    b.click("#errors-toggle");
    b.wait(
        "the mails in error",
        "return !document.getElementById('errors').hidden",
    );
    assert_eq!(
        b.js(
            "return document.getElementById('errors-toggle').getAttribute('aria-expanded')",
            json!([])
        ),
        "true"
    );
    let errors = b.text("#error-rows");
    assert!(
        errors.contains("ann@example.com") && errors.contains("5.1.1"),
        "{errors}"
    );
    let history = b.text("#history-rows");
    assert!(
        history.contains("api:ops") && history.contains("purge"),
        "{history}"
    );

    // For a screen reader: a live region, every control named, every
    // field labelled, the graph an image with a text.
    let unnamed = b.js(
        "return [...document.querySelectorAll('button, input')].filter(e => \
           e.tagName === 'BUTTON' ? !e.textContent.trim() : !document.querySelector('label[for=\"' + e.id + '\"]')).map(e => e.id)",
        json!([]),
    );
    assert_eq!(unnamed, json!([]));
    assert_eq!(
        b.js(
            "return document.getElementById('announce').getAttribute('aria-live')",
            json!([])
        ),
        "polite"
    );
    let chart = b.js("const s = document.querySelector('#chart svg'); return [s.getAttribute('role'), s.getAttribute('aria-label')]", json!([]));
    assert_eq!(chart[0], "img");
    assert!(
        chart[1].as_str().unwrap().contains("last 30 days"),
        "{chart}"
    );

    // The layout: 1280 and 360 px, nothing sideways.
    check_width(&b, 1280, "page-1280");
    check_width(&b, 360, "page-360");
    check_width(&b, 1920, "page-1920");

    // In French when the browser asks for French.
    let ua = b.js("return navigator.userAgent", json!([]));
    b.cdp(
        "Emulation.setUserAgentOverride",
        json!({"userAgent": ua, "acceptLanguage": "fr-FR,fr;q=0.9"}),
    );
    b.go(&url);
    b.wait("the French picker", "return document.documentElement.lang === 'fr' && !document.getElementById('picker').hidden");
    b.keys("#search", &format!("{}\u{E007}", me()));
    b.wait(
        "the account's page",
        "return !document.getElementById('panel').hidden",
    );
    assert_eq!(b.text("#state-title"), "État du service");
    assert_eq!(b.text("#do-block"), "Bloquer l'envoi");
    assert_eq!(b.text("#change-recipient"), "Changer le destinataire");
    assert!(b.text("#state-text").starts_with("Envoi actif"));
    check_width(&b, 360, "page-360-fr");
}
