// The console of `roster serve` in Debian's headless Chromium (driven by playwright-core):
// sign in, Sync now, see the run finish, open the held run and approve it. tests/serve.rs
// starts the server and runs this with BASE, TOKEN, SHOTS and PLAYWRIGHT_CORE set.
const { chromium } = require(process.env.PLAYWRIGHT_CORE);
const fs = require('fs');
const path = require('path');
const os = require('os');

const base = process.env.BASE;
const shots = process.env.SHOTS;

async function main() {
  fs.mkdirSync(shots, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'roster-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(60000);
  const shot = (name) => page.screenshot({ path: path.join(shots, name + '.png'), fullPage: true });
  try {
    // Signed out: the sign-in form.
    await page.goto(base + '/');
    await page.fill('input[name=token]', process.env.TOKEN);
    await shot('1-sign-in');
    await page.click('button[type=submit]');
    await page.waitForSelector('#sources');
    const cookie = (await context.cookies()).find((c) => c.name === 'roster_session');
    if (!cookie || !cookie.httpOnly || cookie.sameSite !== 'Strict') {
      throw new Error('the session cookie is not HttpOnly and SameSite=Strict: ' + JSON.stringify(cookie));
    }
    await shot('2-sources');

    // Sync now: the run's page, until the run finishes (live updates or reloads).
    await page.click('tr[data-source=staff] button.sync');
    await page.waitForURL(/\/console\/runs\/\d+$/);
    await waitForText('#run-status', 'ok');
    await shot('3-run-finished');

    // The people source's run trips the deletion guard and is held with its plan.
    await page.goto(base + '/');
    await page.click('tr[data-source=people] button.sync');
    await page.waitForURL(/\/console\/runs\/\d+$/);
    await waitForText('#run-status', 'aborted');
    await page.waitForSelector('#approve');
    const plan = await page.textContent('#plan');
    if (!plan.includes('deactivate') || !plan.includes('user09')) {
      throw new Error('the held plan is not shown: ' + plan);
    }
    await shot('4-held-run');
    await page.goto(base + '/');
    await page.waitForSelector('a.held');
    await page.click('a.held');
    await page.click('#approve');
    await page.waitForURL(/\/console\/runs\/\d+$/);
    await waitForText('#run-status', 'ok');
    await shot('5-approved-run');

    // The user search.
    await page.goto(base + '/console/users?q=user09');
    const users = await page.textContent('#users');
    if (!users.includes('user09') || users.includes('user08')) {
      throw new Error('the user search found: ' + users);
    }
    await shot('6-user-search');
    console.log('console ok');
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }

  async function waitForText(selector, text) {
    const deadline = Date.now() + 60000;
    for (;;) {
      const t = await page.textContent(selector).catch(() => '');
      if (t && t.includes(text)) return;
      if (Date.now() > deadline) throw new Error(`${selector} never showed ${text}: ${t}`);
      await page.waitForTimeout(200);
      // The page may be reloading itself on a server event already.
      await page.reload().catch(() => {});
    }
  }
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
