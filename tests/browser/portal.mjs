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

import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, writeFileSync, readFileSync, mkdirSync, copyFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const binary = process.env.DISCREET_BIN || join(root, 'target', 'debug', 'discreet');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const screenshots = process.env.SCREENSHOT_DIR || join(root, 'target', 'browser-screenshots');
const updateDocs = process.env.UPDATE_DOCS === '1';
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const started = Date.now();
/// A link of the page's navigation.
const nav = (page, name) => page.getByRole('navigation').getByRole('link', { name, exact: true });
const work = mkdtempSync(join(tmpdir(), 'discreet-browser-'));
const dataDir = join(work, 'data');
const kekFile = join(work, 'discreet.kek');
const CUSTOMER = 'c-17850';
const failures = [];
const axeResults = {};
let server;

function check(condition, what) {
  if (!condition) {
    failures.push(what);
    console.error(`FAIL: ${what}`);
  } else {
    console.log(`ok: ${what}`);
  }
}

function cli(args) {
  const run = spawnSync(binary, [...args, '--data-dir', dataDir, '--kek-file', kekFile], {
    encoding: 'utf8',
    env: cleanEnv(),
    timeout: 120_000,
  });
  if (run.status !== 0) {
    throw new Error(`discreet ${args.join(' ')} exited ${run.status}: ${run.stderr}`);
  }
  return run.stdout;
}

function cleanEnv() {
  const env = { ...process.env };
  for (const name of Object.keys(env)) {
    if (name.startsWith('DISCREET_')) delete env[name];
  }
  env.RUST_LOG = 'warn';
  return env;
}

function freePort() {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.unref();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolvePort(port));
    });
  });
}

async function api(base, method, path, key, body) {
  const response = await fetch(base + path, {
    method,
    headers: {
      ...(key ? { authorization: `Bearer ${key}` } : {}),
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: response.status, json, text };
}

/// Runs axe-core in the page (injected through the DevTools protocol, which the page's
/// Content-Security-Policy does not govern) and records its violations by impact.
async function audit(page, name) {
  await page.evaluate(axeSource);
  const results = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const run = await axe.run(document, { resultTypes: ['violations'] });
    return run.violations.map((violation) => ({
      id: violation.id,
      impact: violation.impact,
      nodes: violation.nodes.length,
      help: violation.help,
    }));
  });
  const byImpact = { critical: 0, serious: 0, moderate: 0, minor: 0 };
  for (const violation of results) byImpact[violation.impact] = (byImpact[violation.impact] || 0) + 1;
  axeResults[name] = { ...byImpact, violations: results.map((v) => `${v.impact}:${v.id}`) };
  const blocking = results.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  check(blocking.length === 0, `${name}: axe-core finds no serious or critical violation ${JSON.stringify(blocking)}`);
}

async function shoot(page, name) {
  mkdirSync(screenshots, { recursive: true });
  const file = join(screenshots, `portal-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  if (updateDocs) {
    const docs = join(root, 'docs', 'screenshots');
    mkdirSync(docs, { recursive: true });
    copyFileSync(file, join(docs, `portal-${name}.png`));
  }
}

/// A small shop: the tour customer and others whose baskets overlap, so the models learn.
function shopCsv() {
  const lines = ['InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country'];
  const items = [
    ['85123A', 'WHITE HANGING HEART T-LIGHT HOLDER', '2.55'],
    ['22423', 'REGENCY CAKESTAND 3 TIER', '12.75'],
    ['47566', 'PARTY BUNTING', '4.95'],
    ['84879', 'ASSORTED COLOUR BIRD ORNAMENT', '1.69'],
    ['20725', 'LUNCH BAG RED RETROSPOT', '1.65'],
    ['22720', 'SET OF 3 CAKE TINS PANTRY DESIGN', '4.95'],
  ];
  const baskets = {
    17850: [0, 1, 2],
    13047: [0, 1, 3],
    12583: [1, 2, 4],
    13748: [0, 2, 5],
    15100: [1, 3, 4, 5],
    15291: [0, 1, 2, 3],
  };
  let invoice = 536365;
  let day = 1;
  for (const [customer, basket] of Object.entries(baskets)) {
    for (const index of basket) {
      const [code, title, price] = items[index];
      lines.push(`${invoice},${code},${title},2,2011-11-${String(day).padStart(2, '0')} 10:00:00,${price},${customer},United Kingdom`);
      invoice += 1;
    }
    day += 1;
  }
  return { csv: lines.join('\n') + '\n', customers: Object.keys(baskets).map((c) => `c-${c}`), tourEvents: baskets[17850].length };
}

async function main() {
  const shop = shopCsv();
  const csvPath = join(work, 'shop.csv');
  writeFileSync(csvPath, shop.csv);
  cli(['import', csvPath, '--shift-to-now']);
  const admin = JSON.parse(cli(['keys', 'create', '--role', 'admin', '--json'])).secret;
  const storefront = JSON.parse(cli(['keys', 'create', '--role', 'storefront', '--json'])).secret;

  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  server = spawn(binary, ['serve', '--data-dir', dataDir, '--kek-file', kekFile, '--listen', `127.0.0.1:${port}`], {
    env: cleanEnv(),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let serverLog = '';
  server.stderr.on('data', (chunk) => { serverLog += chunk; });
  for (let attempt = 0; ; attempt += 1) {
    try {
      const health = await fetch(`${base}/healthz`);
      if (health.status === 200) break;
    } catch { /* not listening yet */ }
    if (attempt > 600) throw new Error(`the server did not become ready:\n${serverLog}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const customer of shop.customers) {
    const consent = await api(base, 'PUT', `/v1/subjects/${customer}/consents/personalization`, storefront, { granted: true, source: 'checkout-banner-v3' });
    if (consent.status !== 200) throw new Error(`consent: ${consent.text}`);
  }
  const personal = await api(base, 'GET', `/v1/subjects/${CUSTOMER}/recommendations?n=3`, storefront);
  check(personal.json && personal.json.personalized === true, 'before: the customer gets personal recommendations');

  const minted = await api(base, 'POST', '/v1/portal/sessions', storefront, { subject: CUSTOMER, return_url: `${base}/portal/`, locale: 'en' });
  check(minted.status === 201 && minted.json.url.startsWith(`${base}/portal/start/`), 'the shop mints a start URL');
  check(!minted.json.url.includes(CUSTOMER), 'the start URL holds no customer id');

  const browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
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

    // Overview, with real figures.
    const landing = await page.goto(minted.json.url);
    check(landing.status() === 200 && new URL(page.url()).pathname === '/portal/', 'the start URL lands on the overview');
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
    const toggle = page.getByRole('switch', { name: 'personalization' });
    check(await toggle.isChecked(), 'the personalization switch is on');
    await toggle.uncheck();
    await page.getByRole('button', { name: 'Save my choices' }).click();
    check((await page.locator('.notice').innerText()).includes('saved'), 'the choices are saved');
    check(!(await page.getByRole('switch', { name: 'personalization' }).isChecked()), 'the switch stays off');
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
    await page.getByRole('button', { name: 'Forget me now' }).click();
    check(new URL(page.url()).pathname === '/portal/forget', 'without the confirmation the browser does not send the form');
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
    const verify = spawnSync(binary, ['receipt', 'verify', receiptPath], { encoding: 'utf8', env: cleanEnv() });
    check(verify.status === 0 && verify.stdout.startsWith('VALID'), `discreet receipt verify accepts the downloaded receipt (${verify.stdout.split('\n')[0]})`);
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

let crashed = null;
try {
  await main();
} catch (error) {
  crashed = error;
  failures.push(String(error && error.stack ? error.stack : error));
  console.error(error);
} finally {
  if (server) server.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
}
const seconds = (Date.now() - started) / 1000;
console.log(JSON.stringify({ suite: 'portal', seconds, failures: failures.length, axe: axeResults }));
process.exit(failures.length === 0 && !crashed ? 0 : 1);
