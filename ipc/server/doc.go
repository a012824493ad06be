// Package server answers the ipc protocol for an agent: the Unix socket
// (Server, NewServer, Serve: peer-uid check, frame cap, per-connection
// in-flight limit), the WebSocket on loopback (WebSocketServer: Host,
// Origin and secret checks, rate limit, keepalive), and restricted sockets
// (token.get for chosen servers only, for forwarding with ssh -R).
//
// It is the only part of ipc that imports the agent: it calls a Backend
// (the part of *agent.Agent it needs), attaches the peer to each request
// as an agent.Caller (and a restricted socket's servers, WithRestriction),
// and maps agent errors to wire codes (ipc.ErrorFor). It decides nothing
// about callers itself: the protocol table says which methods a restricted
// socket serves, and the agent's policy (agent/policy, Decide) judges the
// rest, socket.add included.
// Framing, paths, listeners and the wire types come from package ipc; the
// protocol itself is specified in ipc's package documentation.
//
// Run is the whole agent process (`mcpkey agent`): config, credential
// store, the socket (or systemd's), the per-user lock, the WebSocket,
// restricted sockets, config reloads, and the tray through a hook main
// passes (this package never imports the tray). The `agent` and `log`
// commands (NewCmdAgent, NewCmdLog) live here, built like ipc/cli's,
// because they need the agent.
//
//	api ← ipc ← ipc/cli ← ipc/server → agent → api
package server
