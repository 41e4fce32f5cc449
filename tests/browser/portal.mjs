// The privacy center in a real browser: Debian's headless Chromium driven by playwright-core,
// every page checked by axe-core. It builds a small shop with the real binary (import, keys,
// serve), sends a customer to the privacy center as the shop's backend would, and walks what a
// customer does: see the overview with real figures, read their data, withdraw
// personalization (and the API then answers non-personal), download the export and parse it,
// forget themselves and verify the receipt with `discreet receipt verify`, and find the
// session gone. Screenshots of every page go to SCREENSHOT_DIR; with UPDATE_DOCS=1 one of each
// is also written under docs/screenshots/ for the README.
//
// Usage: DISCREET_BIN=path/to/discreet node tests/browser/portal.mjs
// Exit code 0 when every check passed; the last line of output is a JSON summary.

import { spawnSync } from 'node:child_process';
import { createServer as createHttpServer } from 'node:http';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  api, audit, binary, check, cleanEnv, cli as runCli, launch, runSuite,
  serve, shoot as shootPage, shopCsv, workspace,
} from './common.mjs';

/// A link of the page's navigation.
const nav = (page, name) => page.getByRole('navigation').getByRole('link', { name, exact: true });
const space = workspace();
const work = space.work;
const CUSTOMER = 'c-17850';
let server;
const cli = (args) => runCli(space, args);
const shoot = (page, name) => shootPage(page, `portal-${name}`);

async function main() {
  const shop = shopCsv();
  const csvPath = join(work, 'shop.csv');
  writeFileSync(csvPath, shop.csv);
  cli(['import', csvPath, '--shift-to-now']);
  const admin = JSON.parse(cli(['keys', 'create', '--role', 'admin', '--json'])).secret;
  const storefront = JSON.parse(cli(['keys', 'create', '--role', 'storefront', '--json'])).secret;

  const served = await serve(space);
  server = served.server;
  const { base } = served;
  for (const customer of shop.customers) {
    const consent = await api(base, 'PUT', `/v1/subjects/${customer}/consents/personalization`, storefront, { granted: true, source: 'checkout-banner-v3' });
    if (consent.status !== 200) throw new Error(`consent: ${consent.text}`);
  }
  const personal = await api(base, 'GET', `/v1/subjects/${CUSTOMER}/recommendations?n=3`, storefront);
  check(personal.json && personal.json.personalized === true, 'before: the customer gets personal recommendations');

  const minted = await api(base, 'POST', '/v1/portal/sessions', storefront, { subject: CUSTOMER, return_url: `${base}/portal/`, locale: 'en' });
  check(minted.status === 201 && minted.json.url.startsWith(`${base}/portal/start/`), 'the shop mints a start URL');
  check(!minted.json.url.includes(CUSTOMER), 'the start URL holds no customer id');

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

    // The customer follows the link from the shop's own site (another origin), as they
    // would from their account page.
    const shopSite = createHttpServer((request, response) => {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      response.end(`<!doctype html><html lang="en"><title>Shop</title><a id="privacy" href="${minted.json.url}">Privacy center</a></html>`);
    });
    await new Promise((r) => shopSite.listen(0, 'localhost', r));
    const shopUrl = `http://localhost:${shopSite.address().port}/account`;
    await page.goto(shopUrl);
    await Promise.all([page.waitForURL(`${base}/portal/`), page.click('#privacy')]);
    shopSite.close();
    foreign.length = 0;
    check(new URL(page.url()).pathname === '/portal/', 'the link from the shop lands on the overview');
    const cookies = await context.cookies();
    const session = cookies.find((cookie) => cookie.name === 'discreet_portal');
    check(session && session.httpOnly && session.sameSite === 'Strict' && session.path === '/portal', 'the session cookie is HttpOnly, SameSite=Strict, Path=/portal');
    check(await page.locator('h1').innerText() === 'Your data', 'the overview says whose data it shows');
    const figures = await page.locator('.figures dd').allInnerTexts();
    check(figures[0] === String(shop.tourEvents), `the overview shows the customer's ${shop.tourEvents} purchases (saw ${figures[0]})`);
    check(figures[3] === 'on', 'personal suggestions are on');
    await audit(page, 'overview');
    await shoot(page, 'overview');
    await page.keyboard.press('Tab');
    check(await page.evaluate(() => document.activeElement.className) === 'skip', 'the first Tab reaches the skip link');
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    check(outline !== 'none', `the focused link shows its focus (outline ${outline})`);
    await page.keyboard.press('Enter');
    check(await page.evaluate(() => document.activeElement.id) === 'main', 'the skip link moves the focus to the content');

    // My data: items by title.
    await nav(page, 'My data').click();
    check((await page.locator('main').innerText()).includes('REGENCY CAKESTAND 3 TIER (22423)'), 'my data shows items by title');
    await audit(page, 'data');
    await shoot(page, 'data');

    // Consents: withdraw personalization; the API then answers non-personal.
    await nav(page, 'Consents').click();
    await audit(page, 'consents');
    await shoot(page, 'consents');
    const toggle = page.getByRole('switch', { name: 'Personal suggestions' });
    check(await toggle.isChecked(), 'the personalization switch is on');
    await toggle.uncheck();
    await page.getByRole('button', { name: 'Save my choices' }).click();
    check((await page.locator('.notice').innerText()).includes('saved'), 'the choices are saved');
    check(!(await page.getByRole('switch', { name: 'Personal suggestions' }).isChecked()), 'the switch stays off');
    check((await page.locator('main').innerText()).includes('privacy-center'), 'the history says where the decision came from');
    const after = await api(base, 'GET', `/v1/subjects/${CUSTOMER}/recommendations?n=3`, storefront);
    check(after.json && after.json.personalized === false, 'after withdrawal the API answers non-personal recommendations');

    // Activity: who used the data.
    await nav(page, 'Activity').click();
    check((await page.locator('main').innerText()).includes('You, in the privacy center'), 'the activity shows the customer\'s own visits');
    await audit(page, 'activity');
    await shoot(page, 'activity');

    // Download: the Art. 20 export as a file.
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      nav(page, 'Download').click(),
    ]);
    const exportPath = join(work, 'my-data.json');
    await download.saveAs(exportPath);
    const exported = JSON.parse(readFileSync(exportPath, 'utf8'));
    check(exported.subject === CUSTOMER && exported.events.length === shop.tourEvents, 'the download is the customer\'s export and parses');

    // Forget: confirm, then the receipt; verify it with the CLI.
    await nav(page, 'Forget me').click();
    await audit(page, 'forget');
    await shoot(page, 'forget');
    const posts = [];
    const countPosts = (request) => {
      if (request.method() === 'POST') posts.push(request.url());
    };
    page.on('request', countPosts);
    await page.getByRole('button', { name: 'Forget me now' }).click();
    await page.waitForTimeout(300);
    page.off('request', countPosts);
    check(posts.length === 0, `without the confirmation the browser does not send the form ${JSON.stringify(posts)}`);
    await page.getByLabel('I understand').check();
    await page.getByRole('button', { name: 'Forget me now' }).click();
    check(new URL(page.url()).pathname === '/portal/receipt', 'the forget answers with the receipt page');
    await audit(page, 'receipt');
    await shoot(page, 'receipt');
    const [receiptDownload] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Download the receipt' }).click(),
    ]);
    const receiptPath = join(work, 'forget-receipt.json');
    await receiptDownload.saveAs(receiptPath);
    const shopKey = (await api(base, 'GET', '/v1/receipts/public-key')).json.public_key;
    const verify = spawnSync(binary, ['receipt', 'verify', receiptPath, '--public-key', shopKey], { encoding: 'utf8', env: cleanEnv() });
    check(verify.status === 0 && verify.stdout.startsWith('VALID: '), `discreet receipt verify accepts the downloaded receipt under the shop's published key (${verify.stdout.split('\n')[0]})`);
    const gone = await api(base, 'GET', `/v1/subjects/${CUSTOMER}/export`, admin);
    check(gone.status === 404, 'the API no longer knows the customer');

    // The session is gone.
    const ended = await page.goto(`${base}/portal/`);
    check(ended.status() === 401, 'after the forget the session shows no data');
    await audit(page, 'ended');
    await shoot(page, 'ended');

    // German, for another customer.
    const german = await api(base, 'POST', '/v1/portal/sessions', storefront, { subject: 'c-13047', return_url: `${base}/portal/`, locale: 'de' });
    await page.goto(german.json.url);
    await page.waitForURL(`${base}/portal/`);
    await page.waitForLoadState('load');
    check(await page.evaluate(() => document.documentElement.lang) === 'de', 'a German session speaks German');
    check(await page.locator('h1').innerText() === 'Ihre Daten', 'the German overview');
    await audit(page, 'overview-de');
    await shoot(page, 'overview-de');

    check(foreign.length === 0, `no request left the shop's origin ${JSON.stringify(foreign)}`);
    check(cspViolations.length === 0, `no Content-Security-Policy violation ${JSON.stringify(cspViolations)}`);
    await context.close();
  } finally {
    await browser.close();
  }
}

await runSuite('portal', space, main, () => server);
