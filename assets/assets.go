// Package assets holds mcpkey's embedded files: the pages the loopback OAuth
// callback answers with and the tray icons.
//
// Everything here is read-only data; the generator for the icons is
// ./gen (go run ./assets/gen).
package assets

import (
	_ "embed"
	"html/template"
	"io"
)

// CallbackHTML is the page the loopback callback answers a successful sign-in
// with ("Signed in to mcpkey — you can close this tab"). Do not modify it.
//
//go:embed callback.html
var CallbackHTML []byte

//go:embed callback_error.html
var callbackErrorHTML string

// errorPage is parsed once; html/template escapes Message for the HTML and
// text contexts it appears in.
var errorPage = template.Must(template.New("callback_error.html").Parse(callbackErrorHTML))

// RenderCallbackError writes the page shown when a sign-in fails. message is
// escaped by html/template; the caller still sanitizes and caps it, since it
// may come from a remote server.
func RenderCallbackError(w io.Writer, message string) error {
	return errorPage.Execute(w, struct{ Message string }{message})
}

// Tray icons, 64x64 PNG, legible on light and dark panels (a white ring
// around a coloured disc with a dark glyph outline).
var (
	// IconReady: every session is usable (green disc, check mark).
	//
	//go:embed icon_ready.png
	IconReady []byte
	// IconAttention: a session needs a login or an approval is waiting
	// (amber disc, exclamation mark).
	//
	//go:embed icon_attention.png
	IconAttention []byte
	// IconLocked: the agent is locked (blue-grey disc, padlock).
	//
	//go:embed icon_locked.png
	IconLocked []byte
	// IconError: the agent or its store is failing (red disc, cross).
	//
	//go:embed icon_error.png
	IconError []byte
)

// Tray icons for the macOS menu bar: template images, 32x32 PNG (fyne.io/
// systray shows them at 16x16 points, so this is exactly @2x), opaque black
// on transparent; the system recolours them for light and dark menu bars.
// Each state has its own silhouette, since colour is not available.
var (
	// IconReadyTemplate: a key.
	//
	//go:embed icon_ready_template.png
	IconReadyTemplate []byte
	// IconAttentionTemplate: a key with an exclamation mark.
	//
	//go:embed icon_attention_template.png
	IconAttentionTemplate []byte
	// IconLockedTemplate: a padlock.
	//
	//go:embed icon_locked_template.png
	IconLockedTemplate []byte
	// IconErrorTemplate: a key with a cross.
	//
	//go:embed icon_error_template.png
	IconErrorTemplate []byte
)
