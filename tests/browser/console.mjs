// Drives headless Chromium (Debian's package, through playwright-core) through the operator's
// console and the customer's web chat, against a server that tests/browser.rs started and
// seeded. Exits non-zero, naming the step, when anything is not as it should be.
//
// Environment: JQ_BASE (the server), JQ_EMAIL and JQ_PASSWORD (a console user), JQ_PHONE (the
// seeded customer's phone, typed in another format), JQ_NOTE (a memory note of theirs),
// JQ_SCREENSHOTS (where to save screenshots), CHROMIUM (the browser; /usr/bin/chromium).
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const env = (name) => {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set`);
  }
  return value;
};
const base = env('JQ_BASE');
const email = env('JQ_EMAIL');
const password = env('JQ_PASSWORD');
const phone = env('JQ_PHONE');
const note = env('JQ_NOTE');
const shots = env('JQ_SCREENSHOTS');
mkdirSync(shots, { recursive: true });

const INJECTED_NOTE = 'Dog <img src=x onerror="window.__xss=\'note\'"> in the yard';

let step = 'start';
const fail = (message) => {
  throw new Error(`${step}: ${message}`);
};
const expect = (condition, message) => {
  if (!condition) {
    fail(message);
  }
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  // Root (as in CI) cannot use Chromium's sandbox.
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic'],
});
const dialogs = [];
const watch = (page) => {
  page.on('dialog', async (dialog) => {
    dialogs.push(dialog.message());
    await dialog.dismiss();
  });
  page.on('pageerror', (error) => dialogs.push(`page error: ${error.message}`));
};
// Nothing a customer wrote may run: no dialog, no global set by an injected handler.
const assertInert = async (page) => {
  const xss = await page.evaluate(() => window.__xss);
  expect(xss === undefined, `injected HTML ran (window.__xss = ${xss})`);
  expect(dialogs.length === 0, `unexpected dialogs or errors: ${dialogs.join('; ')}`);
};

try {
  const desktop = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await desktop.newPage();
  watch(page);

  step = 'sign-in';
  await page.goto(`${base}/admin/dashboard`);
  expect(page.url().endsWith('/admin/login'), `not sent to the login page: ${page.url()}`);
  await page.screenshot({ path: join(shots, 'login.png') });
  await page.fill('#email', email);
  await page.fill('#password', `${password}-wrong`);
  await page.click('button[type=submit]');
  expect(
    (await page.textContent('.alert')).includes('do not match'),
    'a wrong password was not refused',
  );
  await page.fill('#email', email);
  await page.fill('#password', password);
  await page.click('button[type=submit]');
  await page.waitForURL('**/admin/dashboard');
  expect((await page.textContent('h1')) === 'Dashboard', 'no dashboard after signing in');
  expect(
    (await page.textContent('.figures')).includes('approvals waiting'),
    'the dashboard shows no figures',
  );
  await page.screenshot({ path: join(shots, 'dashboard.png'), fullPage: true });

  step = 'find the customer by phone';
  await page.click('nav >> text=Customers');
  await page.fill('#q', phone);
  await page.click('form.search button');
  const results = page.locator('ul.results li a');
  expect((await results.count()) === 1, `expected one customer for ${phone}, got ${await results.count()}`);
  await results.first().click();
  await page.waitForSelector('#memory');

  step = 'read their memory';
  const memory = await page.textContent('#memory');
  expect(memory.includes(note), `the memory note "${note}" is not shown`);
  const name = await page.textContent('h1.customer-name');
  expect(name.includes('<script>'), `the name's markup is not shown as text: ${name}`);
  expect(
    (await page.textContent('#messages')).includes('<img src=x onerror'),
    'the message body is not shown as text',
  );
  expect((await page.locator('main img').count()) === 0, 'an injected <img> became an element');
  expect(
    (await page.locator('script:not([src])').count()) === 0,
    'an inline <script> element is on the page',
  );
  await assertInert(page);

  step = 'add a memory note with markup';
  await page.fill('#new-note', INJECTED_NOTE);
  await page.click('form.add-note button[type=submit]');
  await page.locator('#memory .note-content', { hasText: INJECTED_NOTE }).waitFor();
  expect((await page.locator('main img').count()) === 0, 'the note became an element');
  await assertInert(page);

  step = 'a note with an expiry in the past is refused next to the field';
  await page.fill('#new-note', 'Prefers mornings');
  await page.fill('#new-expiry', '2001-01-01T10:00');
  await page.click('form.add-note button[type=submit]');
  expect(
    (await page.textContent('#note-error')).includes('future'),
    'no message next to the expiry field',
  );
  await page.screenshot({ path: join(shots, 'customer.png'), fullPage: true });

  step = 'approve the quote';
  await page.click('nav >> text=Approvals');
  const approval = page.locator('section.approval').first();
  const explanation = await approval.locator('pre.explanation').textContent();
  expect(/\$[0-9]/.test(explanation), `no line-by-line explanation: ${explanation}`);
  await page.screenshot({ path: join(shots, 'approvals.png'), fullPage: true });
  await approval.locator('button[value=approve]').click();
  await page.waitForSelector('text=Nothing waits for you.');

  step = 'chat as a customer through to a booking';
  const phoneContext = await browser.newContext({
    viewport: { width: 390, height: 844 },
    isMobile: true,
    hasTouch: true,
  });
  const chat = await phoneContext.newPage();
  watch(chat);
  await chat.goto(`${base}/chat`);
  const say = async (text, replies) => {
    await chat.fill('#text', text);
    await chat.click('#send');
    await chat.waitForFunction(
      (n) => document.querySelectorAll('#log .msg.theirs').length >= n,
      replies,
    );
  };
  await say('hello <script>window.__xss="chat"</script><img src=x onerror="window.__xss=1">', 1);
  expect(
    (await chat.locator('#log .msg.mine').first().textContent()).includes('<script>'),
    'the customer\'s own markup is not shown as text',
  );
  expect((await chat.locator('#log img').count()) === 0, 'markup in the chat became an element');
  await say('2 mattresses and a dresser', 2);
  expect((await chat.locator('#log .price').count()) >= 1, 'the price is not shown');
  await say('45 Oak Avenue, Marietta GA 30060', 3);
  const choices = chat.locator('#choices button.choice');
  await choices.first().waitFor();
  expect((await choices.count()) >= 1, 'no window choices as buttons');
  await chat.screenshot({ path: join(shots, 'chat.png'), fullPage: true });
  await choices.first().click();
  await chat.waitForFunction(() =>
    Array.from(document.querySelectorAll('#log .msg.theirs')).some((m) =>
      m.textContent.includes("You're booked!"),
    ),
  );
  await assertInert(chat);
  await chat.screenshot({ path: join(shots, 'chat-booked.png'), fullPage: true });

  step = 'move the job to completed';
  await page.click('nav >> text=Jobs');
  const job = page.locator('article.job', { hasText: 'mattress' }).first();
  await job.waitFor();
  for (const [button, label] of [
    ['en_route', 'En route'],
    ['arrived', 'Arrived'],
    ['completed', 'Completed'],
  ]) {
    await page.locator('article.job', { hasText: 'mattress' }).first().locator(`button[value=${button}]`).click();
    await page.waitForLoadState();
    const status = await page.locator('article.job', { hasText: 'mattress' }).first().locator('.status').textContent();
    expect(status === label, `expected ${label}, the job shows ${status}`);
  }
  expect(
    (await page.locator('article.job', { hasText: 'mattress' }).first().locator('form.steps').count()) === 0,
    'a completed job still offers steps',
  );
  await page.screenshot({ path: join(shots, 'jobs.png'), fullPage: true });

  step = 'take the web conversation over and answer it from the inbox';
  await page.click('nav >> text=Inbox');
  await page.screenshot({ path: join(shots, 'inbox.png'), fullPage: true });
  await page.locator('ul.inbox li a', { hasText: 'web' }).first().click();
  await page.click('button[value=take]');
  await page.waitForSelector('text=Taken over by');
  await page.evaluate(() => {
    window.__notReloaded = true;
  });
  await chat.fill('#text', 'can you come at 8:30 instead?');
  await chat.click('#send');
  await chat.waitForFunction(() => !document.getElementById('send').disabled);
  await page.locator('#thread li', { hasText: 'can you come at 8:30 instead?' }).waitFor();
  expect(
    await page.evaluate(() => window.__notReloaded === true),
    'the page was reloaded to show the new message',
  );
  const reply = 'Yes, 8:30 works <b>sharp</b>';
  await page.fill('#reply', reply);
  await page.click('form.reply button[type=submit]');
  await page.locator('#thread li', { hasText: reply }).waitFor();
  await page.screenshot({ path: join(shots, 'conversation.png'), fullPage: true });
  await chat.locator('#log .msg.theirs', { hasText: reply }).waitFor();
  expect((await chat.locator('#log b').count()) === 0, 'the operator\'s markup became an element');
  await assertInert(chat);
  await assertInert(page);

  step = 'the pipeline, searched by the phone in another format';
  await page.click('nav >> text=Pipeline');
  await page.fill('#q', phone);
  await page.click('form.search button');
  expect(
    (await page.locator('table.pipeline tbody tr').count()) >= 1,
    'the pipeline did not find the customer\'s lead',
  );
  await page.goto(`${base}/admin/pipeline`);
  await page.screenshot({ path: join(shots, 'pipeline.png'), fullPage: true });

  step = 'settings: preview a quote with the pricebook, then the system page';
  await page.click('nav >> text=Settings');
  await page.fill('#sample', 'a fridge and 3 mattresses');
  await page.click('button[value=preview]');
  const preview = await page.locator('#preview').textContent();
  expect(/\$[0-9]/.test(preview), `no preview: ${preview}`);
  // The preview follows what is typed, without a submit.
  await page.fill('#sample', 'a piano and a hot tub');
  await page.waitForFunction(() => {
    const live = document.getElementById('live-preview');
    return !live.hidden && /\$[0-9]/.test(live.textContent);
  });
  await page.screenshot({ path: join(shots, 'settings.png'), fullPage: true });
  await page.click('nav >> text=System');
  expect(
    (await page.textContent('#schema')).includes('The schema is what migration'),
    'the schema check is not shown as passing',
  );
  await page.screenshot({ path: join(shots, 'system.png'), fullPage: true });

  step = 'the console on a phone';
  const phonePage = await phoneContext.newPage();
  watch(phonePage);
  await phonePage.goto(`${base}/admin/login`);
  await phonePage.fill('#email', email);
  await phonePage.fill('#password', password);
  await phonePage.click('button[type=submit]');
  await phonePage.waitForURL('**/admin/dashboard');
  const overflow = await phonePage.evaluate(
    () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
  );
  expect(overflow <= 0, `the dashboard is ${overflow}px wider than a phone screen`);
  await phonePage.screenshot({ path: join(shots, 'dashboard-phone.png'), fullPage: true });

  step = 'log out';
  await page.click('form.logout button');
  await page.waitForURL('**/admin/login');
  await page.goto(`${base}/admin/customers`);
  expect(page.url().endsWith('/admin/login'), 'still signed in after logging out');
  await assertInert(page);
  console.log('browser: every step passed');
} catch (error) {
  console.error(`browser test failed at ${step}: ${error.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
