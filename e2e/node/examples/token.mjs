// Fetch an access token from the mcpkey agent using only node:net.
// Usage: node token.mjs <server-url-or-name>
import net from 'node:net';

const sock = process.env.MCPKEY_SOCK ?? `${process.env.XDG_RUNTIME_DIR}/mcpkey/agent.sock`;
const req = { jsonrpc: '2.0', id: 1, method: 'token.get', params: { server: process.argv[2] } };
const conn = net.connect(sock, () => conn.write(JSON.stringify(req) + '\n'));
let buf = '';
conn.on('data', (chunk) => {
  buf += chunk;
  if (!buf.includes('\n')) return;
  conn.destroy();
  const { result, error } = JSON.parse(buf.slice(0, buf.indexOf('\n')));
  if (error) { console.error(`mcpkey: ${error.message}`); process.exitCode = 1; } else console.log(result.access_token);
});
conn.on('error', (err) => { console.error(`mcpkey: ${err.message}`); process.exitCode = 1; });
