// Fetch an access token from the mcpkey agent over its WebSocket (npm ws).
// Usage: node client.cjs <server> [path/to/agent.ws.json]
const fs = require('node:fs');
const WebSocket = require('ws');

const file = process.argv[3] ?? `${process.env.XDG_RUNTIME_DIR}/mcpkey/agent.ws.json`;
const { url, secret } = JSON.parse(fs.readFileSync(file, 'utf8'));
const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${secret}` } });
ws.on('open', () => ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'token.get', params: { server: process.argv[2] } })));
ws.on('message', (data) => {
  const { result, error } = JSON.parse(data);
  if (error) { console.error(`mcpkey: ${error.message}`); process.exitCode = 1; } else console.log(result.access_token);
  ws.close();
});
ws.on('error', (err) => { console.error(`mcpkey: ${err.message}`); process.exitCode = 1; });
