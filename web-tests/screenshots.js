// Regenerates the README's screenshots (docs/screenshots/*.png) from a real node with a seeded
// catalog: `node web-tests/screenshots.js` after `cargo build -p boxoffice`.
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { startServer, createEvent, launchBrowser, signIn, ROOT } from './lib/harness.js';

const out = join(ROOT, 'docs', 'screenshots');
mkdirSync(out, { recursive: true });
const server = await startServer();
const browser = await launchBrowser();
try {
  server.cli('seed', '--events', '400', '--seed', '7');
  const event = await createEvent(server, {
    sections: [
      { name: 'Floor', rows: 8, seatsPerRow: 24, priceCents: 25000 },
      { name: 'Lower Bowl', rows: 10, seatsPerRow: 30, priceCents: 14000 },
      { name: 'Lawn', capacity: 500, priceCents: 5000 },
    ],
  });
  const sections = Array.from({ length: 20 }, (_, i) => ({
    name: `Section ${101 + i}`, rows: 50, seatsPerRow: 50, priceCents: 4500 + 500 * (i % 6),
  }));
  const stadium = await createEvent(server, { name: 'Seattle Sounders vs. Portland Timbers', category: 'sports',
    performers: ['Seattle Sounders FC', 'Portland Timbers'], sections });
  // Some seats already gone.
  const other = server.token('someone');
  await server.api('POST', '/v1/attempt', other, { eventId: event.eventId, section: 'Floor', quantity: 8 });
  await server.api('POST', '/v1/attempt', other, { eventId: stadium.eventId, section: 'Section 104', quantity: 8 });
  const context = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  const page = await context.newPage();
  const shot = (name) => page.screenshot({ path: join(out, `${name}.png`) });
  await signIn(page, server.base, 'alice');
  await page.goto(server.base + '/?q=tayler+swfit');
  await shot('search');
  await page.goto(server.base + `/events/${event.eventId}`);
  await page.getByRole('button', { name: 'Floor, row C, seat 12, $250.00, available', exact: true }).click();
  await page.getByRole('button', { name: 'Floor, row C, seat 13, $250.00, available', exact: true }).click();
  await page.locator('#seatmap').scrollIntoViewIfNeeded();
  await page.evaluate(() => window.scrollBy(0, -60));
  await shot('event');
  await page.getByRole('button', { name: 'Hold seats', exact: true }).click();
  await page.getByRole('timer').waitFor();
  await shot('checkout');
  await page.getByRole('button', { name: 'Pay', exact: true }).click();
  await page.getByRole('heading', { name: "You're going!" }).waitFor();
  await page.goto(server.base + '/tickets');
  await page.getByRole('img', { name: /^QR code for ticket / }).first().waitFor();
  await shot('tickets');
  await page.goto(server.base + `/events/${stadium.eventId}`);
  await page.locator('#seatmap [data-section]').first().waitFor();
  await page.locator('#seatmap').scrollIntoViewIfNeeded();
  await page.evaluate(() => window.scrollBy(0, -60));
  await shot('stadium');
  const org = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  const op = await org.newPage();
  await signIn(op, server.base, 'olivia', 'organizer');
  await op.goto(server.base + `/organizer/events/${event.eventId}`);
  await op.screenshot({ path: join(out, 'sales.png') });
  console.log('screenshots written to', out);
} finally {
  await browser.close();
  await server.stop();
}
