//! The compliance console and the subject report, end to end in headless Chromium: a
//! compliance officer signs in, finds the leak hunt's co-location alert, reads the actor's
//! timeline, resolves the alert with a note, and the journalist reads the refused requests in
//! their own report. Run by crates/cli/tests/browser.rs against a served `custos demo`:
//!
//!     node tests/browser/console.mjs DATA/demo-urls.json ARTIFACTS_DIR
//!
//! Each step leaves a full-page screenshot in ARTIFACTS_DIR; a failed check leaves
//! failure.png, prints what was expected and what was found, and exits with status 1.
//! The browser is Debian's Chromium (or $CUSTOS_CHROMIUM); nothing is downloaded.

import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

/** The officer's alert: the leak hunt's co-location probe, raised on this actor. */
const ALERT_RULE = 'co_location_probe';
const ALERT_ACTOR = 's-cn-1';
const ALERT_SEVERITY = 'critical';
/** The purpose the leak hunt claimed, refused in the journalist's report. */
const LEAK_HUNT_PURPOSE = 'internal_investigation';
const RESOLUTION_NOTE = 'Browser test: LEAK-7 reviewed; requests from China refused, access of s-cn-1 suspended.';

/** How long one navigation, click or element wait may take. */
const STEP_TIMEOUT_MS = 20_000;
/** How long the detector may take to put the leak hunt's alert in the queue. */
const ALERT_WAIT_MS = 60_000;
/** Pause between two looks at the queue while waiting for the alert. */
const ALERT_POLL_INTERVAL_MS = 1_000;
/** How long Chromium may take to start. */
const LAUNCH_TIMEOUT_MS = 60_000;
/** The whole run, whatever hangs: past this the script exits with status 1. */
const RUN_TIMEOUT_MS = 240_000;

/** Flags for a closed network: no sandbox (containers), no calls home, no QUIC probes. */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A check that did not hold: what it was about, what was expected and what was found. */
class CheckFailed extends Error {
  constructor(what, expected, found) {
    super(`${what}: expected ${expected}, found ${found}`);
    this.what = what;
    this.expected = expected;
    this.found = found;
  }
}

function check(holds, what, expected, found) {
  if (!holds) {
    throw new CheckFailed(what, expected, found);
  }
}

/** Text of the first element `selector` matches, trimmed; waits for it to be attached. */
async function textOf(page, selector) {
  const locator = page.locator(selector).first();
  await locator.waitFor({ state: 'attached' });
  return (await locator.textContent()).trim();
}

/** Opens `url` and checks that the server answered with a success status. */
async function open(page, url, what) {
  const response = await page.goto(url);
  check(response !== null && response.ok(), `opening ${what}`, 'a 2xx answer', response === null ? 'no response' : `status ${response.status()} at ${response.url()}`);
}

async function screenshot(page, artifacts, name) {
  await page.screenshot({ path: join(artifacts, name), fullPage: true });
}

/** The alert queue's rows as plain text cells, with each row's alert link. */
async function queueRows(page) {
  return page.locator('table#alerts tbody tr').evaluateAll((rows) =>
    rows.map((row) => ({
      cells: [...row.querySelectorAll('td')].map((cell) => cell.textContent.trim()),
      href: row.querySelector('a.alert-link')?.getAttribute('href') ?? null,
    })),
  );
}

/** Signs in with the officer's token and lands on the alert queue. */
async function signIn(page, urls, artifacts) {
  await open(page, urls.console, 'the sign-in page');
  await page.locator('textarea#token').waitFor({ state: 'visible' });
  // The screenshot is taken before the token is typed, so that no artifact holds it.
  await screenshot(page, artifacts, '01-login.png');
  await page.locator('textarea#token').fill(urls.officer_token);
  await Promise.all([page.waitForURL(/\/console\/alerts(\?|$)/), page.locator('button#sign-in').click()]);
  const officer = await textOf(page, '#officer');
  check(officer === urls.officer, 'the signed-in officer', urls.officer, officer);
}

/** Filters the queue to the rule and waits (bounded) for the actor's alert; returns its URL. */
async function findAlert(page, urls, artifacts) {
  const filters = page.locator('form#alert-filters');
  await filters.locator('input[name=rule]').fill(ALERT_RULE);
  await Promise.all([page.waitForURL((url) => url.searchParams.get('rule') === ALERT_RULE), filters.locator('button[type=submit]').click()]);
  const deadline = Date.now() + ALERT_WAIT_MS;
  let rows = await queueRows(page);
  // The detector runs beside the server; its alerts may land a moment after the demo listens.
  while (!rows.some((row) => row.cells[3] === ALERT_ACTOR) && Date.now() < deadline) {
    await page.waitForTimeout(ALERT_POLL_INTERVAL_MS);
    await page.reload();
    rows = await queueRows(page);
  }
  const otherRules = rows.filter((row) => row.cells[2] !== ALERT_RULE).map((row) => row.cells[2]);
  check(otherRules.length === 0, 'the queue filtered by rule', `only ${ALERT_RULE} alerts`, `rules ${JSON.stringify(otherRules)}`);
  const alert = rows.find((row) => row.cells[3] === ALERT_ACTOR);
  check(
    alert !== undefined && alert.href !== null,
    `a ${ALERT_RULE} alert on ${ALERT_ACTOR} within ${ALERT_WAIT_MS} ms`,
    `a row of table#alerts with actor ${ALERT_ACTOR} and an a.alert-link`,
    rows.length === 0 ? 'no rows' : `actors ${JSON.stringify(rows.map((row) => row.cells[3]))}`,
  );
  await screenshot(page, artifacts, '02-alerts.png');
  return new URL(alert.href, urls.base).href;
}

/** Opens the alert from the queue and checks what it says. */
async function readAlert(page, alertUrl, artifacts) {
  await Promise.all([page.waitForURL(alertUrl), page.locator(`table#alerts a.alert-link[href="${new URL(alertUrl).pathname}"]`).click()]);
  const severity = await textOf(page, '#alert-severity');
  check(severity === ALERT_SEVERITY, 'the alert severity (#alert-severity)', ALERT_SEVERITY, JSON.stringify(severity));
  const status = await textOf(page, '#alert-status');
  check(status !== 'resolved', 'the alert status before resolving (#alert-status)', 'open or acknowledged', JSON.stringify(status));
  const actor = await textOf(page, 'a#actor-link');
  check(actor === ALERT_ACTOR, 'the alert actor (a#actor-link)', ALERT_ACTOR, JSON.stringify(actor));
  const summary = await textOf(page, '#alert-summary');
  check(summary.includes('IP addresses'), 'the alert summary (#alert-summary)', 'a summary about IP addresses', JSON.stringify(summary));
  await screenshot(page, artifacts, '03-alert.png');
}

/** Follows the actor link and checks the timeline shows refusals and its activity chart. */
async function readActorTimeline(page, urls, artifacts) {
  const timelineUrl = new URL(`/console/actors/${ALERT_ACTOR}`, urls.base).href;
  await Promise.all([page.waitForURL(timelineUrl), page.locator('a#actor-link').click()]);
  const title = await textOf(page, 'h1#timeline-title');
  check(title.includes(ALERT_ACTOR), 'the timeline title (h1#timeline-title)', `a title naming ${ALERT_ACTOR}`, JSON.stringify(title));
  const bars = await page.locator('figure#activity svg rect').count();
  check(bars > 0, 'the activity chart (figure#activity svg)', 'at least one bar', `${bars} bars`);
  const denied = await page.locator('table.entries tr.decision-deny').allTextContents();
  check(denied.length > 0, 'denied decisions in the timeline (table.entries tr.decision-deny)', 'at least one row', 'none');
  const refusedHunt = denied.filter((row) => row.includes(LEAK_HUNT_PURPOSE));
  check(refusedHunt.length > 0, 'the leak hunt among the denied decisions', `a denied row for ${LEAK_HUNT_PURPOSE}`, `${denied.length} denied rows, none for that purpose`);
  await screenshot(page, artifacts, '04-actor-timeline.png');
}

/** Goes back to the alert, resolves it with a note and checks the page says so. */
async function resolveAlert(page, alertUrl, artifacts) {
  await page.goBack();
  check(page.url() === alertUrl, 'going back from the timeline', alertUrl, page.url());
  const note = page.locator('form#resolve input#resolve-note');
  await note.waitFor({ state: 'visible' });
  await note.fill(RESOLUTION_NOTE);
  // The form posts and is sent back to the same URL: wait for that page, not for the URL.
  const [posted] = await Promise.all([
    page.waitForResponse((response) => response.request().method() === 'POST' && response.url().endsWith('/resolve')),
    page.waitForResponse((response) => response.request().method() === 'GET' && response.url() === alertUrl),
    page.locator('button#resolve-button').click(),
  ]);
  check(posted.status() === 303 || posted.status() === 302 || posted.status() === 307, 'the resolve form post', 'a redirect to the alert', `status ${posted.status()}`);
  await page.waitForLoadState('load');
  const status = await textOf(page, '#alert-status');
  check(status === 'resolved', 'the alert status after resolving (#alert-status)', 'resolved', JSON.stringify(status));
  const notes = await page.locator('ul#notes li').allTextContents();
  check(notes.some((line) => line.includes(RESOLUTION_NOTE)), 'the resolution note (ul#notes)', JSON.stringify(RESOLUTION_NOTE), JSON.stringify(notes));
  const resolveForms = await page.locator('form#resolve').count();
  check(resolveForms === 0, 'the resolve form on a resolved alert', 'no form#resolve', `${resolveForms} forms`);
  await screenshot(page, artifacts, '05-resolved.png');
}

/** Opens the journalist's own report and checks it lists the leak hunt's refusals. */
async function readJournalistReport(page, urls, artifacts) {
  await open(page, urls.journalist_report, "the journalist's report");
  const heading = await textOf(page, 'h1');
  check(heading === 'Who accessed your data', "the report's heading", '"Who accessed your data"', JSON.stringify(heading));
  const rows = await page.locator('table tbody tr').evaluateAll((rows) =>
    rows.map((row) => [...row.querySelectorAll('td')].map((cell) => cell.innerText.replace(/\s+/g, ' ').trim())),
  );
  // Columns: when, purpose and case, fields, who, decision, receipt.
  const refused = rows.filter((cells) => cells[1]?.startsWith(LEAK_HUNT_PURPOSE) && cells[4] === 'deny');
  check(
    refused.length > 0,
    "the leak hunt's refusals in the journalist's report",
    `rows with purpose ${LEAK_HUNT_PURPOSE} and decision deny`,
    `${rows.length} rows: ${JSON.stringify(rows.map((cells) => `${cells[1]} → ${cells[4]}`))}`,
  );
  await screenshot(page, artifacts, '06-journalist-report.png');
}

async function main() {
  const [urlsPath, artifacts] = process.argv.slice(2);
  if (!urlsPath || !artifacts) {
    console.error('usage: node tests/browser/console.mjs DATA/demo-urls.json ARTIFACTS_DIR');
    process.exit(2);
  }
  const urls = JSON.parse(readFileSync(urlsPath, 'utf8'));
  mkdirSync(artifacts, { recursive: true });
  const executablePath = process.env.CUSTOS_CHROMIUM || '/usr/bin/chromium';
  const browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS, timeout: LAUNCH_TIMEOUT_MS });
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
  const page = await context.newPage();
  let alertUrl = null;
  const steps = [
    ['sign in as the compliance officer', () => signIn(page, urls, artifacts)],
    [`find the ${ALERT_RULE} alert on ${ALERT_ACTOR}`, async () => (alertUrl = await findAlert(page, urls, artifacts))],
    ['read the alert', () => readAlert(page, alertUrl, artifacts)],
    ["read the actor's timeline", () => readActorTimeline(page, urls, artifacts)],
    ['resolve the alert with a note', () => resolveAlert(page, alertUrl, artifacts)],
    ["read the journalist's report", () => readJournalistReport(page, urls, artifacts)],
  ];
  let failed = false;
  for (const [index, [name, run]] of steps.entries()) {
    try {
      await run();
      console.log(`ok ${index + 1} ${name} (${page.url().replace(/token=[^&]+/, 'token=…')})`);
    } catch (error) {
      failed = true;
      console.error(`FAILED step ${index + 1}: ${name}`);
      if (error instanceof CheckFailed) {
        console.error(`  check:    ${error.what}`);
        console.error(`  expected: ${error.expected}`);
        console.error(`  found:    ${error.found}`);
      } else {
        console.error(`  ${error.stack ?? error}`);
      }
      console.error(`  page:     ${page.url().replace(/token=[^&]+/, 'token=…')}`);
      await page.screenshot({ path: join(artifacts, 'failure.png'), fullPage: true }).catch((screenshotError) => {
        console.error(`  (no failure.png: ${screenshotError.message})`);
      });
      console.error(`  screenshot: ${join(artifacts, 'failure.png')}`);
      break;
    }
  }
  await browser.close();
  if (failed) {
    process.exit(1);
  }
  console.log(`all ${steps.length} steps passed; screenshots in ${artifacts}`);
}

// A hung browser or server must not hang the test run.
setTimeout(() => {
  console.error(`FAILED: the run took longer than ${RUN_TIMEOUT_MS} ms`);
  process.exit(1);
}, RUN_TIMEOUT_MS).unref();

main().catch((error) => {
  console.error(`FAILED: ${error.stack ?? error}`);
  process.exit(1);
});
