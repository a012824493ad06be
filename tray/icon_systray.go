//go:build !(darwin && !cgo)

package tray

import (
	"runtime"

	"fyne.io/systray"
)

// setIcon shows the icon for s: a template image on macOS, the coloured
// icon elsewhere. Only a non-nil template goes to SetTemplateIcon: on macOS
// fyne.io/systray reads its first byte unchecked.
func setIcon(s iconState) {
	icon, template := trayIcon(s, runtime.GOOS)
	if template != nil {
		systray.SetTemplateIcon(template, icon)
		return
	}
	systray.SetIcon(icon)
}
