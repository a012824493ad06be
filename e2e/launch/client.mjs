// An MCP host built on the TypeScript SDK (@modelcontextprotocol/sdk, pinned
// in e2e/node) for mcpkey's launcher tests: it connects, lists the tools,
// makes the calls in CLIENT_CALLS and prints one JSON line with what it saw.
//
// Usage:
//   node client.mjs stdio CMD [ARGS...]   spawn CMD (e.g. mcpkey bridge NAME)
//                                         with StdioClientTransport
//   node client.mjs desktop CONFIG        spawn the one server in CONFIG (a
//                                         claude_desktop_config.json) as Claude
//                                         Desktop does: its command, args and
//                                         env over the SDK's default
//                                         environment, nothing else of ours
//   node client.mjs http URL              Streamable HTTP to URL, sending
//                                         Authorization: Bearer $MCP_BEARER
//                                         when set (never in argv)
// Environment:
//   CLIENT_CALLS  JSON array of {"name": ..., "arguments": {...}}
// Output (stdout):
//   {"server":{...},"tools":[names],"results":[{"text":...,"isError":...}],
//    "logs":[data...],"progress":N}
import { readFileSync } from 'node:fs';
import { Client } from '../node/node_modules/@modelcontextprotocol/sdk/dist/esm/client/index.js';
import { StdioClientTransport } from '../node/node_modules/@modelcontextprotocol/sdk/dist/esm/client/stdio.js';
import { StreamableHTTPClientTransport } from '../node/node_modules/@modelcontextprotocol/sdk/dist/esm/client/streamableHttp.js';
import { LoggingMessageNotificationSchema } from '../node/node_modules/@modelcontextprotocol/sdk/dist/esm/types.js';

const [mode, target, ...rest] = process.argv.slice(2);
let transport;
if (mode === 'stdio' && target) {
  // The whole environment: the bridge finds the agent through MCPKEY_SOCK
  // (the SDK would otherwise pass only HOME, PATH and a few more).
  transport = new StdioClientTransport({ command: target, args: rest, env: process.env, stderr: 'inherit' });
} else if (mode === 'desktop' && target) {
  const servers = Object.values(JSON.parse(readFileSync(target, 'utf8')).mcpServers);
  if (servers.length !== 1) throw new Error(`${target}: want one server, have ${servers.length}`);
  const [{ command, args, env }] = servers;
  // env undefined: getDefaultEnvironment() alone; else merged over it.
  transport = new StdioClientTransport({ command, args, env, stderr: 'inherit' });
} else if (mode === 'http' && target) {
  const headers = process.env.MCP_BEARER ? { Authorization: `Bearer ${process.env.MCP_BEARER}` } : {};
  transport = new StreamableHTTPClientTransport(new URL(target), { requestInit: { headers } });
} else {
  console.error('usage: node client.mjs stdio CMD [ARGS...] | desktop CONFIG | http URL');
  process.exit(2);
}

const client = new Client({ name: 'e2e-ts-host', version: '1.0.0' });
const logs = [];
let progress = 0;
client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
  logs.push(n.params.data);
});

try {
  await client.connect(transport);
  const { tools } = await client.listTools();
  const results = [];
  for (const call of JSON.parse(process.env.CLIENT_CALLS ?? '[]')) {
    const res = await client.callTool(call, undefined, {
      onprogress: () => { progress++; },
      timeout: 30000,
    });
    results.push({
      text: res.content?.filter((c) => c.type === 'text').map((c) => c.text).join('\n') ?? '',
      isError: res.isError ?? false,
    });
  }
  console.log(JSON.stringify({ server: client.getServerVersion(), tools: tools.map((t) => t.name), results, logs, progress }));
  await client.close();
} catch (err) {
  console.error(`e2e-ts-host: ${err?.message ?? err}`);
  process.exitCode = 1;
  await client.close().catch(() => {});
}
