// Walks tokenwarden's login pages in a real Chromium (Debian's package), driven by
// playwright-core. Started by tests/issuer/browser_login.rs, which gives the URLs and checks what
// this prints: one JSON object on the last line of stdout. Screenshots go to `screenshots`.
//
// Input: the JSON in the environment variable WALK:
//   {chromium, screenshots, appCallback, staticUrl, upstreamUrl, providerIssuer, user, password,
//    upstreamUser, upstreamOnlyBase, agreementUrl, firstPartyUrl, onlyProviderIssuer,
//    attackerOrigin}
// Scenarios, each in a fresh browser context (no shared cookies):
//   static   — the login page offers both connectors; a wrong password is refused with an
//              announced error, then the right one signs in: the code reaches the application.
//   upstream — "Continue with <provider>", the provider's login and consent, back with a code.
//   tampered — the same, with the `state` changed on the way back: tokenwarden's error page.
//   agreement — an issuer with only the provider (`upstreamOnlyBase`), a client that is not
//              first-party (`agreementUrl`): tokenwarden's page shows the client, the API and
//              the scopes, and nothing goes to the provider or the application until the
//              button is pressed; the same button posted from another site (`attackerOrigin`)
//              with the page's own hidden fields is refused (no cookie crosses sites); then the
//              button, the provider, and the code.
//   firstParty — the same issuer, a first-party client (`firstPartyUrl`): straight to the
//              provider, then the code.
import { chromium } from 'playwright-core';
import { join } from 'node:path';

const walk = JSON.parse(process.env.WALK ?? '{}');
const result = {};

const browser = await chromium.launch({
  executablePath: walk.chromium,
  // The tests run as root in a container: Chromium's sandbox needs user namespaces.
  args: ['--no-sandbox'],
});

/** `promise`, or a failure naming `what` after 20 seconds. */
function within(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 20000);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A context whose requests to the application are answered here; resolves with the URL. */
async function context() {
  const ctx = await browser.newContext({ viewport: { width: 1024, height: 860 } });
  let arrived;
  const atApplication = new Promise((resolve) => { arrived = resolve; });
  // Nothing listens at the application's address: the request is answered here (Chromium)
  // or fails (the headless shell does not route redirect targets); either way it was sent.
  ctx.on('request', (request) => {
    if (request.url().startsWith(walk.appCallback)) arrived(request.url());
  });
  await ctx.route(`${walk.appCallback}**`, async (route) => {
    await route.fulfill({ status: 200, contentType: 'text/plain', body: 'the application' });
  });
  const page = await ctx.newPage();
  page.setDefaultTimeout(15000);
  current = page;
  return { ctx, page, atApplication };
}

async function shot(page, name) {
  const path = join(walk.screenshots, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** The focusable elements in Tab order from the top of the page, as short descriptions. */
async function tabOrder(page, count) {
  await page.evaluate(() => document.activeElement?.blur());
  const order = [];
  for (let i = 0; i < count; i += 1) {
    await page.keyboard.press('Tab');
    order.push(await page.evaluate(() => {
      const el = document.activeElement;
      return el.id || el.getAttribute('name') || el.textContent.trim();
    }));
  }
  return order;
}

async function upstreamLogin(page) {
  await page.getByRole('button', { name: /Continue with/ }).click();
  await providerLogin(page);
}

/** The provider's own login and consent pages. */
async function providerLogin(page) {
  await page.locator('input[name="login"]').fill(walk.upstreamUser);
  await page.locator('input[name="password"]').fill('any password');
  await page.locator('button[type="submit"]').click();
  // The provider's consent page.
  await page.locator('input[name="prompt"][value="consent"]').waitFor({ state: 'attached' });
  await page.locator('button[type="submit"]').click();
}

// On a failure, the page as it was, for the test's message.
let current;
const fail = async (error) => {
  console.log(error.message);
  if (current) {
    console.log(`at ${current.url()}`);
    await current.screenshot({ path: join(walk.screenshots, 'failure.png'), fullPage: true }).catch(() => {});
    console.log(await current.content().catch(() => ''));
  }
  process.exit(1);
};
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);

// static
{
  const { ctx, page, atApplication } = await context();
  const first = await page.goto(walk.staticUrl);
  result.static = { status: first.status(), csp: first.headers()['content-security-policy'] };
  result.static.screenshot = await shot(page, 'login');
  result.static.offers = {
    upstream: await page.getByRole('button', { name: /Continue with/ }).isVisible(),
    password: await page.getByLabel('Password', { exact: true }).isVisible(),
  };
  result.static.tabOrder = await tabOrder(page, 5);
  await page.getByLabel('Username', { exact: true }).fill(walk.user);
  await page.getByLabel('Password', { exact: true }).fill(`${walk.password}-wrong`);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  const alert = page.getByRole('alert');
  await alert.waitFor();
  result.static.wrongPassword = {
    alert: (await alert.textContent()).trim(),
    usernameKept: await page.getByLabel('Username', { exact: true }).inputValue(),
    passwordInvalid: await page.getByLabel('Password', { exact: true }).getAttribute('aria-invalid'),
    describedBy: await page.getByLabel('Password', { exact: true }).getAttribute('aria-describedby'),
    focused: await page.evaluate(() => document.activeElement?.id),
  };
  result.static.errorScreenshot = await shot(page, 'login-wrong-password');
  await page.getByLabel('Password', { exact: true }).fill(walk.password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  result.static.application = await within(atApplication, 'the code at the application');
  await ctx.close();
}

// upstream
{
  const { ctx, page, atApplication } = await context();
  await page.goto(walk.upstreamUrl);
  await upstreamLogin(page);
  result.upstream = { application: await within(atApplication, 'the code at the application') };
  await ctx.close();
}

// tampered
{
  const { ctx, page } = await context();
  let reachedApplication = false;
  ctx.on('request', (request) => {
    if (request.url().startsWith(walk.appCallback)) reachedApplication = true;
  });
  // Playwright cannot intercept a hop in the middle of a redirect chain, so the chain that
  // starts with the consent form's POST is followed here up to the callback, whose URL then
  // goes to the browser with its state altered.
  let tampered = false;
  await ctx.route(`${walk.providerIssuer}/interaction/**`, async (route) => {
    const request = route.request();
    if (tampered || request.method() !== 'POST' || !request.postData()?.includes('prompt=consent')) {
      await route.continue();
      return;
    }
    tampered = true;
    let hop = await route.fetch({ maxRedirects: 0 });
    let location = new URL(hop.headers().location, request.url());
    while (location.pathname !== '/callback/oidc') {
      hop = await ctx.request.get(location.toString(), { maxRedirects: 0 });
      location = new URL(hop.headers().location, location);
    }
    const state = location.searchParams.get('state');
    location.searchParams.set('state', `${state.slice(0, -4)}${state.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`);
    await route.fulfill({ status: 303, headers: { location: location.toString() } });
  });
  await page.goto(walk.upstreamUrl);
  const response = page.waitForResponse((r) => r.url().includes('/callback/oidc'));
  await upstreamLogin(page);
  const answer = await response;
  const alert = page.getByRole('alert');
  await alert.waitFor();
  result.tampered = {
    status: answer.status(),
    alert: (await alert.textContent()).trim(),
    heading: (await page.getByRole('heading', { level: 1 }).textContent()).trim(),
    screenshot: await shot(page, 'upstream-tampered-state'),
  };
  // Whether the application was reached is read once the error page has settled: loaded,
  // and no request in flight for half a second (Playwright's networkidle), so a redirect,
  // refresh or script of the page that went on towards the application would have been seen.
  await page.waitForLoadState('networkidle');
  result.tampered.reachedApplication = reachedApplication;
  result.tampered.finalUrl = page.url();
  await ctx.close();
}

// agreement
{
  const { ctx, page, atApplication } = await context();
  const sent = [];
  ctx.on('request', (request) => {
    const url = request.url();
    if (url.startsWith(walk.onlyProviderIssuer) || url.startsWith(walk.appCallback)) sent.push(url);
  });
  const first = await page.goto(walk.agreementUrl);
  const hidden = async (name) => page.locator(`input[type="hidden"][name="${name}"]`).first().getAttribute('value');
  result.agreement = {
    status: first.status(),
    url: page.url(),
    lead: (await page.locator('p.lead').first().textContent()).trim(),
    access: (await page.locator('section.access').textContent()).replace(/\s+/g, ' ').trim(),
    offersPassword: await page.locator('input[name="password"]').count() > 0,
    screenshot: await shot(page, 'upstream-agreement'),
  };
  await page.waitForLoadState('networkidle');
  result.agreement.sentBeforeAgreeing = [...sent];

  // Another site posts the button's form with the page's own hidden fields.
  const login = await hidden('login');
  const csrf = await hidden('csrf_token');
  await ctx.route(`${walk.attackerOrigin}/**`, async (route) => {
    await route.fulfill({
      status: 200,
      contentType: 'text/html',
      body: `<!doctype html><form method="post" action="${walk.upstreamOnlyBase}/authorize">
<input type="hidden" name="login" value="${login}"><input type="hidden" name="csrf_token" value="${csrf}">
<button type="submit" name="connector" value="oidc">Win a prize</button></form>`,
    });
  });
  const attacker = await ctx.newPage();
  await attacker.goto(`${walk.attackerOrigin}/prize`);
  const [forged] = await Promise.all([
    attacker.waitForResponse((r) => r.url().startsWith(`${walk.upstreamOnlyBase}/authorize`)),
    attacker.getByRole('button', { name: 'Win a prize' }).click(),
  ]);
  result.agreement.forged = { status: forged.status() };
  await attacker.waitForLoadState('networkidle');
  await attacker.close();
  result.agreement.sentAfterForgery = [...sent];

  current = page;
  await upstreamLogin(page);
  result.agreement.application = await within(atApplication, 'the code at the application');
  await ctx.close();
}

// firstParty
{
  const { ctx, page, atApplication } = await context();
  const first = await page.goto(walk.firstPartyUrl);
  // The navigation's redirect chain, first to last.
  const chain = [];
  for (let request = first.request(); request; request = request.redirectedFrom()) {
    chain.unshift({ url: request.url(), status: (await request.response())?.status() ?? null });
  }
  result.firstParty = { landedAt: page.url(), chain };
  await providerLogin(page);
  result.firstParty.application = await within(atApplication, 'the code at the application');
  await ctx.close();
}

await browser.close();
console.log(JSON.stringify(result));
