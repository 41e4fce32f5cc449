// The console in a real browser: Debian's headless Chromium driven by playwright-core, every
// page checked by axe-core. It builds a small shop with the real binary (import, keys, serve),
// lets the storefront key read three customers' recommendations, then walks what a privacy
// officer does: sign in with the privacy key, read the dashboard's real figures, the data
// map, a customer's data and the audit trail (downloaded as CSV); open a key-compromise
// incident for the storefront key, see the countdown and the numbers, download the report,
// contain it by revoking the key — which then gets 401 from the API — and, as an admin, see
// the keys. Screenshots go to SCREENSHOT_DIR (and docs/screenshots/ with UPDATE_DOCS=1).
//
// Usage: DISCREET_BIN=path/to/discreet node tests/browser/console.mjs
// Exit code 0 when every check passed; the last line of output is a JSON summary.

import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { api, audit, check, cli as runCli, launch, runSuite, serve, shoot as shootPage, shopCsv, workspace } from './common.mjs';

const nav = (page, name) => page.getByRole('navigation').getByRole('link', { name, exact: true });
const space = workspace();
const cli = (args) => runCli(space, args);
const shoot = (page, name) => shootPage(page, `console-${name}`);
const READ = ['c-17850', 'c-13047', 'c-12583'];
let server;
const timings = {};

async function signIn(page, base, secret) {
  await page.goto(`${base}/console/`);
  await page.getByLabel('API key').fill(secret);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${base}/console/`);
}

async function main() {
  const shop = shopCsv();
  const csvPath = join(space.work, 'shop.csv');
  writeFileSync(csvPath, shop.csv);
  cli(['import', csvPath, '--shift-to-now']);
  const admin = JSON.parse(cli(['keys', 'create', '--role', 'admin', '--json']));
  const privacy = JSON.parse(cli(['keys', 'create', '--role', 'privacy', '--json']));
  const storefront = JSON.parse(cli(['keys', 'create', '--role', 'storefront', '--json']));

  const served = await serve(space);
  server = served.server;
  const { base } = served;
  for (const customer of shop.customers) {
    const consent = await api(base, 'PUT', `/v1/subjects/${customer}/consents/personalization`, storefront.secret, { granted: true, source: 'checkout-banner-v3' });
    if (consent.status !== 200) throw new Error(`consent: ${consent.text}`);
  }
  const since = new Date(Date.now() - 60_000).toISOString().slice(0, 19);
  for (const customer of READ) {
    const read = await api(base, 'GET', `/v1/subjects/${customer}/recommendations?n=3`, storefront.secret);
    check(read.status === 200, `the storefront key reads ${customer}'s recommendations`);
  }

  const browser = await launch();
  try {
    const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1100, height: 800 } });
    const page = await context.newPage();
    const foreign = [];
    page.on('request', (request) => {
      if (!request.url().startsWith(base)) foreign.push(request.url());
    });
    const cspViolations = [];
    page.on('console', (message) => {
      if (message.text().includes('Content Security Policy')) cspViolations.push(message.text());
    });

    // Sign in: a storefront key is refused, the privacy key gets a session cookie.
    await page.goto(`${base}/console/`);
    await audit(page, 'console-sign-in');
    await shoot(page, 'sign-in');
    await page.getByLabel('API key').fill(storefront.secret);
    await page.getByRole('button', { name: 'Sign in' }).click();
    check((await page.locator('.problem').innerText()).includes('no console access'), 'a storefront key is refused at sign-in');
    await signIn(page, base, privacy.secret);
    const cookies = await context.cookies();
    const session = cookies.find((cookie) => cookie.name === 'discreet_console');
    check(session && session.httpOnly && session.sameSite === 'Strict' && session.path === '/console', 'the console cookie is HttpOnly, SameSite=Strict, Path=/console');
    check(!cookies.some((cookie) => cookie.value.includes(privacy.secret)), 'the browser never keeps the key');

    // The dashboard's real figures.
    check(await page.locator('h1').innerText() === 'Dashboard', 'signed in, the dashboard shows');
    check(await page.locator('#subjects-held').innerText() === String(shop.customers.length), `the dashboard counts ${shop.customers.length} customers held`);
    check(await page.locator('#consented').innerText() === String(shop.customers.length), 'every customer consented, and the dashboard says so');
    check((await page.locator('main').innerText()).includes('100.0 %'), 'the personalization consent rate is 100 %');
    check(await page.locator('svg.chart').count() === 2, 'the two charts are drawn server-side as SVG');
    const renders = [];
    for (let round = 0; round < 10; round += 1) {
      const before = Date.now();
      await page.goto(`${base}/console/`);
      renders.push(Date.now() - before);
    }
    renders.sort((a, b) => a - b);
    timings.dashboard_load_ms_p50 = renders[5];
    await page.getByRole('button', { name: 'Verify the ledger now' }).click();
    check((await page.locator('.notice').innerText()).includes('The ledger verifies'), 'the ledger verifies from the dashboard');
    await audit(page, 'console-dashboard');
    await shoot(page, 'dashboard');

    await nav(page, 'Data map').click();
    check((await page.locator('main').innerText()).includes('personalization'), 'the data map lists the purposes');
    await audit(page, 'console-data-map');
    await shoot(page, 'data-map');

    // A customer's data, looked up by id (a form post: no id in the address).
    await nav(page, 'Subjects').click();
    await page.getByLabel('Customer id').fill('c-13047');
    await page.getByRole('button', { name: 'Look up' }).click();
    check(!page.url().includes('c-13047'), 'the customer id is not in the address');
    check(await page.locator('#lookup-events').innerText() === '3', 'the lookup shows the customer\'s 3 purchases');
    check((await page.locator('main').innerText()).includes('REGENCY CAKESTAND 3 TIER (22423)'), 'items by title');
    await audit(page, 'console-subject');
    await shoot(page, 'subject');

    // The audit trail and its CSV.
    await nav(page, 'Audit trail').click();
    await page.getByLabel(/^Actor/).fill(privacy.id);
    await page.getByRole('button', { name: 'Filter' }).click();
    check((await page.locator('#entries').innerText()).includes('events.read'), 'the officer\'s own lookup is on the trail');
    await audit(page, 'console-audit');
    await shoot(page, 'audit');
    const [csvDownload] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Download as CSV' }).click(),
    ]);
    const csvFile = join(space.work, 'audit.csv');
    await csvDownload.saveAs(csvFile);
    const csv = readFileSync(csvFile, 'utf8').split('\r\n');
    check(csv[0] === 'seq,at,actor,action,subject_token,purpose,categories,outcome,detail' && csv.length > 2, 'the CSV has its header and rows');

    // A key-compromise incident for the storefront key.
    await nav(page, 'Incidents').click();
    await audit(page, 'console-incidents');
    await page.getByLabel('An API key was compromised').check();
    await page.getByLabel('The key (for a compromised key)').selectOption(storefront.id);
    await page.getByLabel(/^Since/).fill(since);
    await page.getByLabel(/^What is known/).fill('The storefront key was pasted into a public chat.');
    await page.getByRole('button', { name: 'Compute the impact' }).click();
    check(/\/console\/incidents\/inc_[0-9a-f]+$/.test(page.url()), 'the incident has its own page');
    check(await page.locator('#impact-subjects').innerText() === String(READ.length), `the impact counts exactly the ${READ.length} customers the key read`);
    const countdown = await page.locator('#countdown').innerText();
    check(/^7[12] h \d\d min left$/.test(countdown) || countdown === '71 h 59 min left', `the countdown to notify_by shows (${countdown})`);
    await audit(page, 'console-incident');
    await shoot(page, 'incident');
    const [reportDownload] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Download the report (Markdown)' }).click(),
    ]);
    const reportFile = join(space.work, 'report.md');
    await reportDownload.saveAs(reportFile);
    const report = readFileSync(reportFile, 'utf8');
    check(report.startsWith('# ') && report.includes('33') && report.includes(storefront.id), 'the downloaded report is the Art. 33(3) draft naming the key');

    // Contain: revoke the key; the API then refuses it.
    const before = await api(base, 'GET', `/v1/subjects/${READ[0]}/recommendations?n=3`, storefront.secret);
    check(before.status === 200, 'before containment the key still works');
    await page.getByLabel(/^Revoke the compromised key now/).check();
    await page.getByRole('button', { name: 'Contain' }).click();
    check((await page.locator('.notice').innerText()).includes('containment is recorded'), 'the containment is recorded');
    check(!(await page.locator('#key-revoked').innerText()).includes('not yet'), 'the page shows when the key was revoked');
    const after = await api(base, 'GET', `/v1/subjects/${READ[0]}/recommendations?n=3`, storefront.secret);
    check(after.status === 401, `after containment the key gets 401 (got ${after.status})`);

    // An admin sees the keys (the privacy role has no key management, and no link to it).
    check(await nav(page, 'Keys').count() === 0, 'the privacy role is offered no keys page');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await signIn(page, base, admin.secret);
    await nav(page, 'Keys').click();
    check((await page.locator('main').innerText()).includes(storefront.id), 'the keys page lists the keys');
    await audit(page, 'console-keys');
    await shoot(page, 'keys');

    check(foreign.length === 0, `no request left the shop's origin ${JSON.stringify(foreign)}`);
    check(cspViolations.length === 0, `no Content-Security-Policy violation ${JSON.stringify(cspViolations)}`);
    await context.close();
  } finally {
    await browser.close();
  }
}

await runSuite('console', space, main, () => server, () => ({ timings }));
