package ipc

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"encoding/json"

	"github.com/mcpkey/mcpkey/internal/safefile"
)

// The WebSocket transport: see "WebSocket" in the package documentation.
const (
	// WebSocketPath is the only path the WebSocket server answers on.
	WebSocketPath = "/v1/ws"
	// WebSocketSubprotocol is the subprotocol a browser client offers, next
	// to WebSocketSecretPrefix+secret; the server echoes only this one.
	WebSocketSubprotocol = "mcpkey.v1"
	// WebSocketSecretPrefix prefixes the secret when a browser client,
	// which cannot set headers, sends it as a subprotocol.
	WebSocketSecretPrefix = "mcpkey.secret."
	// WebSocketInfoFile is the file next to the agent's default socket
	// (agent.sock) holding the WebSocket's URL and secret (mode 0600);
	// other sockets get their own (WebSocketInfoPath).
	WebSocketInfoFile = "agent.ws.json"
)

// ListenWebSocket listens on addr for the WebSocket transport. addr is
// HOST:PORT where HOST is 127.0.0.1, ::1 (or [::1]) or localhost (bound as
// 127.0.0.1, never resolved); PORT 0 picks a free port. Any other host, a
// wildcard or an empty one included, is refused: the WebSocket is for this
// machine only.
func ListenWebSocket(addr string) (net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("websocket listen address %q: %w", addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return nil, fmt.Errorf("websocket listen address %q: bad port", addr)
	}
	network := "tcp4"
	switch host {
	case "127.0.0.1":
	case "localhost":
		host = "127.0.0.1"
	case "::1":
		network = "tcp6"
	default:
		return nil, fmt.Errorf("websocket listen address %q: only 127.0.0.1, ::1 and localhost are allowed", addr)
	}
	ln, err := net.Listen(network, net.JoinHostPort(host, port))
	if err != nil {
		return nil, fmt.Errorf("websocket listen: %w", err)
	}
	return ln, nil
}

// WebSocketURL is the URL clients dial for a WebSocket listener.
func WebSocketURL(ln net.Listener) string {
	return "ws://" + ln.Addr().String() + WebSocketPath
}

// NewWebSocketSecret returns a fresh secret: 32 random bytes, base64url
// without padding (43 characters).
func NewWebSocketSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("websocket secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// WebSocketInfo is the content of agent.ws.json: what a client needs to
// reach the agent's WebSocket. Reading the file (0600, in the socket's 0700
// directory) proves the client runs as the agent's user.
type WebSocketInfo struct {
	URL    string `json:"url"`
	Secret string `json:"secret"`
	PID    int    `json:"pid"`
}

// LogValue keeps the secret out of logs.
func (i WebSocketInfo) LogValue() slog.Value {
	return slog.GroupValue(slog.String("url", i.URL), slog.Int("pid", i.PID), slog.String("secret", "REDACTED"))
}

// WebSocketInfoPath returns the info file's path for an agent's socket
// path: in the same directory, named after the socket, so agents on
// different sockets never share one: agent.sock has agent.ws.json,
// work.sock work.ws.json.
func WebSocketInfoPath(socketPath string) string {
	stem := strings.TrimSuffix(filepath.Base(socketPath), ".sock")
	return filepath.Join(filepath.Dir(socketPath), stem+".ws.json")
}

// WriteWebSocketInfo writes info to path with mode 0600, replacing any old
// file atomically (a reader never sees half a file).
func WriteWebSocketInfo(path string, info WebSocketInfo) error {
	b, err := json.Marshal(info)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return safefile.WriteFile(path, append(b, '\n'), 0)
}

// ReadWebSocketInfo reads agent.ws.json. On Unix the file must belong to
// the current user and be closed to group and others, or it is refused (a
// file planted by someone else must not receive our requests).
func ReadWebSocketInfo(path string) (WebSocketInfo, error) {
	var info WebSocketInfo
	fi, err := os.Stat(path)
	if err != nil {
		return info, fmt.Errorf("websocket info: %w", err)
	}
	if err := checkPrivateFile(path, fi); err != nil {
		return info, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return info, fmt.Errorf("websocket info: %w", err)
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return WebSocketInfo{}, fmt.Errorf("websocket info %s: not valid JSON", path)
	}
	if info.URL == "" || info.Secret == "" {
		return WebSocketInfo{}, fmt.Errorf("websocket info %s: url or secret missing", path)
	}
	return info, nil
}

// PublishWebSocket listens on addr (see ListenWebSocket) with a fresh
// secret and writes the URL, the secret and this process's pid to infoPath
// (WebSocketInfoPath of the agent's socket, whose directory Listen has
// checked). Closing the returned listener removes infoPath.
func PublishWebSocket(addr, infoPath string) (net.Listener, WebSocketInfo, error) {
	secret, err := NewWebSocketSecret()
	if err != nil {
		return nil, WebSocketInfo{}, err
	}
	ln, err := ListenWebSocket(addr)
	if err != nil {
		return nil, WebSocketInfo{}, err
	}
	info := WebSocketInfo{URL: WebSocketURL(ln), Secret: secret, PID: os.Getpid()}
	if err := WriteWebSocketInfo(infoPath, info); err != nil {
		ln.Close()
		return nil, WebSocketInfo{}, err
	}
	return &publishedListener{Listener: ln, path: infoPath, secret: secret}, info, nil
}

// publishedListener removes its info file when closed, if the file is still
// its own.
type publishedListener struct {
	net.Listener
	path, secret string
	once         sync.Once
}

func (l *publishedListener) Close() error {
	err := l.Listener.Close()
	l.once.Do(func() {
		// Another agent may have written the file since: never delete
		// what is not ours.
		if info, err := ReadWebSocketInfo(l.path); err == nil &&
			subtle.ConstantTimeCompare([]byte(info.Secret), []byte(l.secret)) == 1 {
			os.Remove(l.path)
		}
	})
	return err
}
