// GraphiQL in headless Chromium against a running server: the page renders offline, loads the schema
// by introspection, runs a query and shows the answer; then a screenshot.
// Usage: node graphiql.mjs http://127.0.0.1:PORT/graphql?query=... EXPECTED_TEXT SCREENSHOT.png
// Prints one JSON object: what was checked, for the test to assert on.
import { chromium } from 'playwright-core';

const [url, expected, screenshot] = process.argv.slice(2);
if (!screenshot) {
  console.error('usage: node graphiql.mjs URL EXPECTED_TEXT SCREENSHOT');
  process.exit(2);
}
const origin = new URL(url).origin;
const report = { elsewhere: [], failed: [], pageErrors: [], introspected: false, docs: '', answer: '' };
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
try {
  // Offline means no request leaves the server: record any that would (and refuse it).
  await page.route('**/*', (route) =>
    route.request().url().startsWith(origin) ? route.continue() : (report.elsewhere.push(route.request().url()), route.abort()),
  );
  page.on('pageerror', (error) => report.pageErrors.push(String(error)));
  page.on('response', (response) => {
    if (response.status() >= 400 && !response.url().endsWith('.map')) report.failed.push(`${response.status()} ${response.url()}`);
  });
  const introspection = page.waitForResponse(
    (r) => r.request().method() === 'POST' && (r.request().postData() || '').includes('__schema'),
    { timeout: 30000 },
  );
  await page.goto(url, { waitUntil: 'load' });
  const schema = await (await introspection).json();
  report.introspected = Boolean(schema.data && schema.data.__schema);
  // The schema is in the IDE: the documentation explorer lists the root types.
  await page.getByRole('button', { name: /documentation explorer/i }).click();
  const docs = page.locator('.graphiql-doc-explorer');
  await docs.getByText('Query', { exact: false }).first().waitFor({ timeout: 30000 });
  report.docs = (await docs.innerText()).slice(0, 500);
  await page.getByRole('button', { name: /execute query/i }).click();
  const result = page.locator('.result-window');
  await result.getByText(expected, { exact: false }).first().waitFor({ timeout: 30000 });
} catch (error) {
  report.error = String(error);
} finally {
  report.answer = (await page.locator('.result-window').innerText().catch(() => '')).slice(0, 2000);
  await page.screenshot({ path: screenshot }).catch(() => {});
  await browser.close();
}
console.log(JSON.stringify(report));
