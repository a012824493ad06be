// Where the agent listens: the same rules as the Go client's
// DefaultSocketPath and RunningAgent (ipc/path*.go, ipc/agentlock.go).

import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join, normalize } from 'node:path';

/** Reads one environment variable ("" or undefined: unset). */
export type Getenv = (name: string) => string | undefined;

const processEnv: Getenv = (name) => process.env[name];

/** sizeof(sun_path) on macOS, NUL included. */
const maxSunPathDarwin = 104;

function uid(): number {
  return process.getuid?.() ?? -1;
}

/**
 * The agent's default socket path: $MCPKEY_SOCK when set, else
 * $XDG_RUNTIME_DIR/mcpkey/agent.sock; without XDG_RUNTIME_DIR (MCP hosts
 * strip it) /run/user/UID/mcpkey/agent.sock when /run/user/UID is a private
 * directory of ours, else $TMPDIR/mcpkey-UID/agent.sock (/tmp without
 * TMPDIR). macOS: ~/Library/Caches/mcpkey/agent.sock, or
 * /tmp/mcpkey-UID/agent.sock when that is too long for a socket.
 */
export function defaultSocketPath(getenv: Getenv = processEnv): string {
  const sock = getenv('MCPKEY_SOCK');
  if (sock) return sock;
  if (process.platform === 'darwin') return darwinSocketPath(getenv('HOME') ?? '');
  if (process.platform === 'win32') return join(getenv('LOCALAPPDATA') ?? '', 'mcpkey', 'agent.sock');
  let runtimeDir = getenv('XDG_RUNTIME_DIR') ?? '';
  if (!runtimeDir && ownPrivateDir(userRunDir())) runtimeDir = userRunDir();
  if (runtimeDir) return join(runtimeDir, 'mcpkey', 'agent.sock');
  return join(getenv('TMPDIR') || '/tmp', `mcpkey-${uid()}`, 'agent.sock');
}

function darwinSocketPath(home: string): string {
  const p = join(home, 'Library', 'Caches', 'mcpkey', 'agent.sock');
  if (!home || Buffer.byteLength(p) >= maxSunPathDarwin) return `/tmp/mcpkey-${uid()}/agent.sock`;
  return p;
}

/** systemd-logind's runtime directory for this user. */
function userRunDir(): string {
  return `/run/user/${uid()}`;
}

/** Whether dir is a directory (not a link to one) of ours, closed to others. */
function ownPrivateDir(dir: string): boolean {
  try {
    const st = lstatSync(dir);
    return st.isDirectory() && st.uid === uid() && (st.mode & 0o077) === 0;
  } catch {
    return false;
  }
}

/** Go's filepath.Clean for the absolute paths HOME holds. */
function clean(p: string): string {
  const n = normalize(p);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

/**
 * The per-user agent lock's path: agent.lock, or agent-<hash of HOME>.lock
 * when HOME is not the account's home directory, in /run/user/UID/mcpkey/
 * (else /tmp/mcpkey-UID/; macOS next to the default socket).
 */
export function agentLockPath(getenv: Getenv = processEnv): string {
  const home = getenv('HOME') ?? '';
  let name = 'agent.lock';
  let account = '';
  try {
    account = userInfo().homedir;
  } catch {
    // as Go's user.Current failing: the plain name
  }
  if (home && account && clean(account) !== clean(home)) {
    name = `agent-${createHash('sha256').update(clean(home)).digest('hex').slice(0, 12)}.lock`;
  }
  let dir: string;
  if (process.platform === 'darwin') {
    dir = darwinSocketPath(home).replace(/\/agent\.sock$/, '');
  } else {
    dir = ownPrivateDir(userRunDir()) ? join(userRunDir(), 'mcpkey') : `/tmp/mcpkey-${uid()}`;
  }
  return join(dir, name);
}

/**
 * The socket recorded by the agent that holds the per-user lock, or
 * undefined. The lock file is read only if it is a private file of ours
 * (not through a link). Node cannot test a flock, so a record is believed
 * while its pid is alive; a stale one only costs a refused connection.
 */
export function runningAgentSocket(getenv: Getenv = processEnv): string | undefined {
  let fd: number;
  try {
    fd = openSync(agentLockPath(getenv), constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    if (st.uid !== uid() || (st.mode & 0o077) !== 0) return undefined;
    const buf = Buffer.alloc(4096);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const rec = JSON.parse(buf.subarray(0, n).toString('utf8')) as { pid?: unknown; socket?: unknown };
    if (typeof rec.socket !== 'string' || !rec.socket || typeof rec.pid !== 'number') return undefined;
    try {
      process.kill(rec.pid, 0);
    } catch {
      return undefined;
    }
    return rec.socket;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}
