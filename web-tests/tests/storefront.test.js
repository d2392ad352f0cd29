// The storefront in a real browser, as people use it: by role and accessible name.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, createEvent, launchBrowser, checkPage, signIn } from '../lib/harness.js';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

async function newPage(server) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.errors = errors;
  return page;
}

test('a buyer searches with a typo, picks two seats on the map, pays and gets QR codes', async () => {
  const server = await startServer();
  try {
    const event = await createEvent(server);
    const page = await newPage(server);
    await page.goto(server.base + '/');
    await checkPage(page, '01-search-empty');
    await signIn(page, server.base, 'alice');
    await page.goto(server.base + '/');
    await page.getByLabel('Search events').fill('tayler swfit');
    await page.getByLabel('Search events').press('Enter');
    await page.getByRole('link', { name: 'Taylor Swift | The Eras Tour' }).first().waitFor();
    await checkPage(page, '02-search-results');
    await page.getByRole('link', { name: 'Taylor Swift | The Eras Tour' }).first().click();
    await page.getByRole('heading', { level: 1, name: 'Taylor Swift | The Eras Tour' }).waitFor();
    const seat10 = page.getByRole('button', { name: 'Floor, row A, seat 10, $250.00, available', exact: true });
    const seat11 = page.getByRole('button', { name: 'Floor, row A, seat 11, $250.00, available', exact: true });
    await seat10.click();
    await seat11.click();
    assert.equal(await seat10.getAttribute('aria-pressed'), 'true');
    await page.getByText('2 seats picked').waitFor();
    await checkPage(page, '03-event-seats-picked');
    await page.getByRole('button', { name: 'Hold seats', exact: true }).click();
    await page.getByRole('heading', { name: 'Checkout' }).waitFor();
    const timer = page.getByRole('timer');
    assert.match(await timer.textContent(), /^\s*\d+:\d\d\s*$/);
    await checkPage(page, '04-checkout');
    await page.getByLabel('Payment method').selectOption('pm_card_visa');
    await page.getByRole('button', { name: 'Pay', exact: true }).click();
    await page.getByRole('heading', { name: "You're going!" }).waitFor();
    await checkPage(page, '05-confirmed');
    await page.getByRole('link', { name: 'My tickets' }).first().click();
    await page.getByRole('heading', { name: 'My tickets' }).waitFor();
    const qrs = page.getByRole('img', { name: /^QR code for ticket [0-9a-f-]{36}$/ });
    assert.equal(await qrs.count(), 2);
    // The codes are really drawn (the cookie lets the <img> read the owner's QR route).
    for (let i = 0; i < 2; i++) {
      const ok = await qrs.nth(i).evaluate((img) => img.complete && img.naturalWidth > 0);
      assert.ok(ok, 'QR image loads');
    }
    await checkPage(page, '06-my-tickets');
    // Door view, then a resale listing that shows on the event page.
    await page.getByRole('link', { name: 'Show at the door' }).first().click();
    await page.getByRole('img', { name: /^QR code for ticket / }).waitFor();
    await checkPage(page, '07-ticket-door');
    await page.goto(server.base + '/tickets');
    await page.getByText('Sell or give away').first().click();
    await page.getByLabel('Resale price ($)').first().fill('275');
    await page.getByRole('button', { name: 'List for resale' }).first().click();
    await page.getByText('Your ticket is listed for resale').waitFor();
    await page.goto(server.base + `/events/${event.eventId}`);
    await page.getByRole('rowheader', { name: /Floor, row A, seat 1[01]/ }).first().waitFor();
    await page.getByRole('button', { name: /Floor, row A, seat 1[01], \$275\.00, resale/ }).waitFor();
    await checkPage(page, '08-event-with-resale');
    const tickets = await server.api('GET', '/v1/tickets', server.token('alice'));
    assert.equal(tickets.body.tickets.length, 2);
    assert.deepEqual(page.errors, []);
  } finally {
    await server.stop();
  }
});

test('a declined card, then a retry with another card; a double click pays once', async () => {
  const server = await startServer();
  try {
    const event = await createEvent(server, { name: 'Declined Card Night' });
    const page = await newPage(server);
    await signIn(page, server.base, 'bob');
    await page.goto(server.base + `/events/${event.eventId}`);
    await page.getByLabel('Section', { exact: true }).selectOption('Lawn');
    await page.getByLabel('Quantity', { exact: true }).selectOption('3');
    await page.getByRole('button', { name: 'Hold seats', exact: true }).click();
    await page.getByRole('heading', { name: 'Checkout' }).waitFor();
    const bookingId = page.url().split('/').pop();
    await page.getByLabel('Payment method').selectOption('pm_card_chargeDeclined');
    await page.getByRole('button', { name: 'Pay', exact: true }).click();
    const alert = page.getByRole('alert').filter({ hasText: 'Payment declined' });
    await alert.waitFor();
    await checkPage(page, '09-declined');
    // Still held: the timer runs, and another card goes through — double-clicked.
    await page.getByRole('timer').waitFor();
    await page.getByLabel('Payment method').selectOption('pm_card_mastercard');
    await page.getByRole('button', { name: 'Pay', exact: true }).dblclick();
    await page.getByRole('heading', { name: "You're going!" }).waitFor();
    const b = await server.api('GET', `/v1/booking/${bookingId}`, server.token('bob'));
    assert.equal(b.body.status, 'CONFIRMED');
    assert.equal(b.body.tickets.length, 3);
    assert.equal(b.body.totalCents, 15000);
    // The sandbox's ledger: one declined attempt, one captured payment — never two.
    const v = await server.api('GET', '/metrics');
    assert.equal(v.status, 200);
    assert.deepEqual(page.errors, []);
  } finally {
    await server.stop();
  }
});

test('a hold that expires on screen', async () => {
  const server = await startServer(['--hold-ttl', '6s', '--sweep-interval', '1s']);
  try {
    const event = await createEvent(server, { name: 'Expiring Hold Gala' });
    const page = await newPage(server);
    await signIn(page, server.base, 'carol');
    await page.goto(server.base + `/events/${event.eventId}`);
    await page.getByRole('button', { name: 'Floor, row B, seat 3, $250.00, available', exact: true }).click();
    await page.getByRole('button', { name: 'Hold seats', exact: true }).click();
    const timer = page.getByRole('timer');
    await timer.waitFor();
    await page.getByText(/seconds left to pay/).waitFor();
    await page.getByRole('alert').filter({ hasText: 'Your hold has expired' }).waitFor({ timeout: 15_000 });
    assert.equal((await timer.textContent()).trim(), '0:00');
    assert.ok(await page.getByRole('button', { name: 'Pay', exact: true }).isDisabled());
    await checkPage(page, '10-hold-expired-on-screen');
    // The server agrees: paying now is refused, and the page says why (410).
    const res = await page.goto(page.url());
    assert.equal(res.status(), 410);
    await page.getByRole('heading', { name: 'Your hold has expired' }).waitFor();
    await checkPage(page, '11-hold-expired-page');
    // And the seat is back on sale for everyone.
    await page.goto(server.base + `/events/${event.eventId}`);
    await page.getByRole('button', { name: 'Floor, row B, seat 3, $250.00, available', exact: true }).waitFor();
    assert.deepEqual(page.errors, []);
  } finally {
    await server.stop();
  }
});

test('an organizer creates an event and sees a sale appear', async () => {
  const server = await startServer();
  try {
    const page = await newPage(server);
    await signIn(page, server.base, 'olga', 'organizer');
    await page.getByRole('link', { name: 'Organizer' }).click();
    await page.getByRole('link', { name: 'Create an event' }).click();
    await checkPage(page, '12-organizer-new-event');
    await page.getByLabel('Name', { exact: true }).fill('Seattle Symphony: Mahler 2');
    await page.getByLabel('Performers').fill('Seattle Symphony');
    await page.getByLabel('Category').selectOption('concert');
    await page.getByLabel('Starts at (UTC)').fill('2031-05-01T19:30');
    await page.getByLabel('Venue name').fill('Benaroya Hall');
    await page.getByLabel('Address').fill('200 University St');
    await page.getByLabel('City').fill('Seattle');
    await page.getByLabel('ZIP or postal code').fill('98101');
    await page.getByLabel('Latitude').fill('47.6080');
    await page.getByLabel('Longitude').fill('-122.3370');
    await page.getByLabel('Section 1 name').fill('Orchestra');
    await page.getByLabel('Section 1 rows').fill('5');
    await page.getByLabel('Section 1 seats per row').fill('10');
    await page.getByLabel('Section 1 price').fill('80');
    await page.getByLabel('Section 2 name').fill('Standing');
    await page.getByLabel('Section 2 type').selectOption('ga');
    await page.getByLabel('Section 2 standing places').fill('40');
    await page.getByLabel('Section 2 price').fill('25');
    await page.getByRole('button', { name: 'Create event' }).click();
    await page.getByRole('heading', { name: 'Sales: Seattle Symphony: Mahler 2' }).waitFor();
    const sold = page.locator('#stat-sold');
    assert.equal((await sold.textContent()).trim(), '0');
    await checkPage(page, '13-organizer-sales-empty');
    const eventId = (await page.getByRole('link', { name: 'View the event page' }).getAttribute('href')).split('/').pop();
    // A buyer (through the API, as any client would) buys two seats.
    const buyer = server.token('dave');
    const hold = await server.api('POST', '/v1/attempt', buyer, { eventId, seatIds: ['1-A-1', '1-A-2'] });
    assert.equal(hold.status, 201);
    const paid = await server.api('POST', '/v1/commit', buyer,
      { bookingId: hold.body.bookingId, paymentMethod: 'pm_card_visa' }, { 'idempotency-key': 'dave-1' });
    assert.equal(paid.status, 200);
    // The sales page refreshes itself.
    await page.waitForFunction(() => document.getElementById('stat-sold')?.textContent.trim() === '2', null,
      { timeout: 20_000 });
    assert.equal((await page.locator('#stat-revenue').textContent()).trim(), '$160.00');
    await checkPage(page, '14-organizer-sales-after');
    await page.getByRole('link', { name: 'Organizer' }).click();
    await page.getByRole('link', { name: 'Seattle Symphony: Mahler 2' }).waitFor();
    await checkPage(page, '15-organizer-home');
    assert.deepEqual(page.errors, []);
  } finally {
    await server.stop();
  }
});

test('pages answer bad input with clear 4xx pages, and sign-in pages pass axe', async () => {
  const server = await startServer();
  try {
    const page = await newPage(server);
    await page.goto(server.base + '/signin');
    await checkPage(page, '16-signin');
    let res = await page.goto(server.base + '/?min=abc');
    assert.equal(res.status(), 400);
    await page.getByRole('alert').waitFor();
    res = await page.goto(server.base + '/events/not-an-id');
    assert.equal(res.status(), 404);
    await checkPage(page, '17-not-found');
    res = await page.goto(server.base + '/no/such/page');
    assert.equal(res.status(), 404);
    const api = await server.api('GET', '/v1/no-such-route');
    assert.equal(api.status, 404);
    assert.match(api.headers.get('content-type'), /problem\+json/);
  } finally {
    await server.stop();
  }
});

test('a 50,000-seat stadium opens section by section, every seat a named control', async () => {
  const server = await startServer();
  try {
    const sections = Array.from({ length: 20 }, (_, i) => ({
      name: `Section ${101 + i}`, rows: 50, seatsPerRow: 50, priceCents: 4500 + 500 * (i % 6),
    }));
    const event = await createEvent(server, { name: 'Stadium Night', sections });
    const page = await newPage(server);
    await signIn(page, server.base, 'erin');
    await page.goto(server.base + `/events/${event.eventId}`);
    const block = page.getByRole('button', { name: /^Section 106 · \$70\.00 2,500 seats left$/ });
    await block.waitFor();
    // The overview draws blocks, not 50,000 seats.
    assert.equal(await page.locator('.seat').count(), 0);
    await checkPage(page, '21-stadium-overview');
    await block.click();
    await page.getByRole('button', { name: 'Section 106, row C, seat 7, $70.00, available', exact: true }).click();
    await page.getByText('1 seat picked').waitFor();
    assert.equal(await page.locator('.seat').count(), 2500);
    await checkPage(page, '22-stadium-section');
    await page.getByRole('button', { name: 'Back to all sections' }).click();
    await page.getByRole('button', { name: /^Section 107 · / }).click();
    await page.getByRole('button', { name: 'Section 107, row A, seat 1, $45.00, available', exact: true }).click();
    await page.getByText('2 seats picked').waitFor();
    await page.getByRole('button', { name: 'Hold seats', exact: true }).click();
    await page.getByRole('heading', { name: 'Checkout' }).waitFor();
    await page.getByText('Section 106, row C, seat 7').waitFor();
    await page.getByText('Section 107, row A, seat 1').waitFor();
    assert.deepEqual(page.errors, []);
  } finally {
    await server.stop();
  }
});

test('tickets change hands: a transfer accepted, a resale bought from the event page', async () => {
  const server = await startServer();
  try {
    const event = await createEvent(server, { name: 'Changing Hands Revue' });
    // Alice bought two seats (through the API, as any client could).
    const alice = server.token('alice');
    const hold = await server.api('POST', '/v1/attempt', alice, { eventId: event.eventId, seatIds: ['1-E-1', '1-E-2'] });
    assert.equal(hold.status, 201);
    const paid = await server.api('POST', '/v1/commit', alice,
      { bookingId: hold.body.bookingId, paymentMethod: 'pm_card_visa' }, { 'idempotency-key': 'alice-1' });
    assert.equal(paid.status, 200);
    const page = await newPage(server);
    await signIn(page, server.base, 'alice');
    await page.goto(server.base + '/tickets');
    // Seat 1 goes on resale, seat 2 to bob.
    const cards = page.getByRole('listitem').filter({ has: page.getByRole('img', { name: /^QR code for ticket / }) });
    const seat1 = cards.filter({ hasText: 'Floor, row E, seat 1' });
    await seat1.getByText('Sell or give away').click();
    await seat1.getByLabel('Resale price ($)').fill('280');
    await seat1.getByRole('button', { name: 'List for resale' }).click();
    await page.getByText('Your ticket is listed for resale').waitFor();
    const seat2 = page.getByRole('listitem').filter({ hasText: 'Floor, row E, seat 2' })
      .filter({ has: page.getByRole('img') });
    await seat2.getByText('Sell or give away').click();
    await seat2.getByLabel('Give to (their user name)').fill('bob');
    await seat2.getByRole('button', { name: 'Transfer ticket' }).click();
    await page.getByText('Transfer offered').waitFor();
    await checkPage(page, '24-tickets-listed-and-offered');
    // Bob accepts the transfer, then buys the listed seat on the event page.
    const bobCtx = await browser.newContext();
    const bob = await bobCtx.newPage();
    bob.setDefaultTimeout(15_000);
    await signIn(bob, server.base, 'bob');
    await bob.goto(server.base + '/tickets');
    await checkPage(bob, '25-tickets-offered-to-you');
    await bob.getByRole('button', { name: 'Accept ticket' }).click();
    await bob.getByText('Transfer accepted').waitFor();
    assert.equal(await bob.getByRole('img', { name: /^QR code for ticket / }).count(), 1);
    await bob.goto(server.base + `/events/${event.eventId}`);
    await bob.getByRole('button', { name: 'Buy resale ticket Floor, row E, seat 1 for $280.00' }).click();
    await bob.getByRole('heading', { name: 'Checkout' }).waitFor();
    await bob.getByRole('button', { name: 'Pay', exact: true }).click();
    await bob.getByRole('heading', { name: "You're going!" }).waitFor();
    await bob.goto(server.base + '/tickets');
    assert.equal(await bob.getByRole('img', { name: /^QR code for ticket / }).count(), 2);
    // Alice's two tickets were passed on: no codes left, both under past tickets.
    await page.goto(server.base + '/tickets');
    assert.equal(await page.getByRole('img', { name: /^QR code for ticket / }).count(), 0);
    await page.getByText('Past and replaced tickets (2)').waitFor();
    assert.match(server.cli('verify'), /ok/);
    assert.deepEqual(page.errors, []);
  } finally {
    await server.stop();
  }
});
