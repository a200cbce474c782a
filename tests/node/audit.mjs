// The GraphQL-over-HTTP spec's server audits (graphql-http's serverAudits) against a running server.
// Usage: node audit.mjs http://127.0.0.1:PORT/graphql
// Prints one JSON line per audit: {id, name, status: "ok" | "warn" | "error", reason}.
import { serverAudits } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs URL');
  process.exit(2);
}
for (const audit of serverAudits({ url })) {
  const result = await audit.fn();
  const reason = result.status === 'ok' ? undefined : result.reason;
  console.log(JSON.stringify({ id: audit.id, name: audit.name, status: result.status, reason }));
}
