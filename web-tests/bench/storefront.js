// Storefront benchmark: a 50,000-seat stadium's event page in Chromium, measured with the
// Performance API — time to first render (first contentful paint, and the seat map drawn), and
// seat-map interaction latency (Event Timing: input to next paint) for opening a section and
// picking seats. Prints a markdown table; run through bench/storefront.sh.
import { startServer, launchBrowser } from '../lib/harness.js';

const RUNS = parseInt(process.env.RUNS || '7', 10);
const SECTIONS = 20, ROWS = 50, PER_ROW = 50; // 50,000 seats

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * (s.length - 1) + 0.5))];
  return { n: s.length, median: q(0.5), p95: q(0.95), max: s[s.length - 1] };
}
const ms = (v) => `${v.toFixed(1)} ms`;

const server = await startServer(process.env.SERVE_ARGS ? process.env.SERVE_ARGS.split(' ') : []);
const browser = await launchBrowser();
try {
  const org = server.token('stadium-org', ['organizer']);
  const sections = Array.from({ length: SECTIONS }, (_, i) => ({
    name: `Section ${101 + i}`, rows: ROWS, seatsPerRow: PER_ROW, priceCents: 4500 + 500 * (i % 6),
  }));
  const t0 = Date.now();
  const created = await server.api('POST', '/v1/events', org, {
    name: 'Stadium Benchmark Night', performers: ['The Benchmarks'], category: 'concert',
    startsAt: new Date(Date.now() + 30 * 86400e3).toISOString().replace(/\.\d+Z$/, 'Z'),
    currency: 'USD',
    venue: { name: 'Lumen Field', address: '800 Occidental Ave S', city: 'Seattle', zipCode: '98134',
             country: 'US', lat: 47.5952, lon: -122.3316 },
    sections,
    policies: { maxTicketsPerCustomer: 8, refundWindowHours: 48, resaleMaxPricePercent: 120 },
  });
  if (created.status !== 201) throw new Error(JSON.stringify(created.body));
  const eventId = created.body.eventId;
  const createSecs = (Date.now() - t0) / 1000;
  // Some seats taken, so the map is not uniform.
  const buyer = server.token('stadium-buyer');
  for (let s = 1; s <= 5; s++) {
    await server.api('POST', '/v1/attempt', buyer, { eventId, section: `Section ${100 + s}`, quantity: 8 });
  }
  const url = `${server.base}/events/${eventId}`;
  const page0 = await (await browser.newContext()).newPage();
  await page0.goto(url); // warm the server's caches once
  await page0.close();

  const fcp = [], ready = [], ttfb = [], load = [], open = [], pick = [], htmlKB = [], jsonKB = [];
  for (let run = 0; run < RUNS; run++) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await page.addInitScript(() => {
      window.__events = [];
      new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__events.push(e); })
        .observe({ type: 'event', durationThreshold: 16, buffered: true });
    });
    await page.goto(url, { waitUntil: 'load' });
    await page.waitForFunction(() => document.getElementById('seatmap')?.dataset.ready === '1');
    const t = await page.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0];
      const paint = performance.getEntriesByName('first-contentful-paint')[0];
      const mark = performance.getEntriesByName('seatmap-ready')[0];
      const json = performance.getEntriesByType('resource').find((r) => r.name.includes('seatmap.json'));
      return { ttfb: nav.responseStart, load: nav.loadEventEnd, fcp: paint ? paint.startTime : NaN,
               ready: mark ? mark.startTime : NaN, html: nav.encodedBodySize, json: json ? json.encodedBodySize : 0 };
    });
    ttfb.push(t.ttfb); load.push(t.load); fcp.push(t.fcp); ready.push(t.ready);
    htmlKB.push(t.html / 1024); jsonKB.push(t.json / 1024);
    // Open a section (draws its 2,500 seats), then pick five seats: real clicks, timed by the
    // browser's Event Timing (input to next paint); in-page rAF timing as a fallback.
    const measure = async (locator) => {
      await locator.scrollIntoViewIfNeeded();
      const before = await page.evaluate(() => window.__events.length);
      const box = await locator.boundingBox();
      const t0 = await page.evaluate(() => performance.now());
      await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
      const fallback = await page.evaluate((t0) => new Promise((r) =>
        requestAnimationFrame(() => setTimeout(() => r(performance.now() - t0), 0))), t0);
      await page.waitForTimeout(50);
      const timed = await page.evaluate((n) => window.__events.slice(n)
        .filter((e) => e.name === 'click' || e.name === 'pointerup' || e.name === 'pointerdown')
        .map((e) => e.duration), before);
      return timed.length ? Math.max(...timed) : fallback;
    };
    open.push(await measure(page.locator('[data-section="6"]')));
    await page.locator('.seat').first().waitFor();
    for (let i = 0; i < 5; i++) {
      pick.push(await measure(page.locator('.seat.s-O').nth(10 + i * 7)));
    }
    await context.close();
  }
  const rows = [
    ['server: first byte of the page (TTFB)', stats(ttfb)],
    ['first contentful paint', stats(fcp)],
    ['seat map drawn (section overview)', stats(ready)],
    ['load event', stats(load)],
    ['open a section (2,500 seats drawn), input to next paint', stats(open)],
    ['pick a seat, input to next paint', stats(pick)],
  ];
  console.log(`\nStadium event: ${SECTIONS * ROWS * PER_ROW} seats in ${SECTIONS} sections ` +
    `(created through POST /v1/events in ${createSecs.toFixed(2)} s); ${RUNS} cold page loads, ` +
    `each in a fresh browser context.\n`);
  console.log(`Page HTML ${stats(htmlKB).median.toFixed(1)} KiB, seat map JSON ${stats(jsonKB).median.toFixed(1)} KiB (on the wire).\n`);
  console.log('| measure | median | p95 | max | n |');
  console.log('|---|---|---|---|---|');
  for (const [name, s] of rows) console.log(`| ${name} | ${ms(s.median)} | ${ms(s.p95)} | ${ms(s.max)} | ${s.n} |`);
} finally {
  await browser.close();
  await server.stop();
}
