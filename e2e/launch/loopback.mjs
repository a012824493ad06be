// Loopback shim for the MCP SDK example servers (node --import): a server
// that listens on a port without a host listens on 127.0.0.1 instead of
// every interface. LOOPBACK_PORT_MAP="3000:41234,…" also moves a port the
// example hardcodes (simpleSseServer.js listens on 3000) to a free one.
import net from 'node:net';

const moved = new Map(
  (process.env.LOOPBACK_PORT_MAP ?? '')
    .split(',')
    .filter(Boolean)
    .map((pair) => pair.split(':').map(Number)),
);
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  // A port may come as a string too (URL.port in the OAuth demo).
  if (typeof args[0] === 'string' && /^\d+$/.test(args[0])) args[0] = Number(args[0]);
  if (typeof args[0] === 'number') {
    if (moved.has(args[0])) args[0] = moved.get(args[0]);
    if (typeof args[1] !== 'string') args.splice(1, 0, '127.0.0.1');
  }
  return listen.apply(this, args);
};
