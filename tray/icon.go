package tray

import (
	"bytes"
	"encoding/binary"
	"image/png"

	"github.com/mcpkey/mcpkey/assets"
)

// iconPNG is the embedded PNG for s.
func iconPNG(s iconState) []byte {
	switch s {
	case iconAttention:
		return assets.IconAttention
	case iconLocked:
		return assets.IconLocked
	case iconError:
		return assets.IconError
	}
	return assets.IconReady
}

// templatePNG is the embedded macOS template image for s.
func templatePNG(s iconState) []byte {
	switch s {
	case iconAttention:
		return assets.IconAttentionTemplate
	case iconLocked:
		return assets.IconLockedTemplate
	case iconError:
		return assets.IconErrorTemplate
	}
	return assets.IconReadyTemplate
}

// trayIcon is what the tray shows for s on goos: icon in goos's format (see
// iconFile), and on macOS also template, a black-on-transparent image the
// menu bar recolours for light and dark mode (systray.SetTemplateIcon).
// template is nil elsewhere: Linux panels and Windows have no template
// images, so the coloured icon is shown as is.
func trayIcon(s iconState, goos string) (icon, template []byte) {
	icon = iconFile(s, goos)
	if goos == "darwin" {
		template = templatePNG(s)
	}
	return icon, template
}

// iconFile is the icon for s in the format goos's tray wants: ICO on
// Windows (fyne.io/systray loads it with LoadImage), PNG elsewhere.
func iconFile(s iconState, goos string) []byte {
	b := iconPNG(s)
	if goos == "windows" {
		return icoFromPNG(b)
	}
	return b
}

// icoFromPNG wraps a PNG in a one-image ICO container (PNG-compressed icon
// entries are valid since Windows Vista).
func icoFromPNG(p []byte) []byte {
	w, h := 0, 0
	if cfg, err := png.DecodeConfig(bytes.NewReader(p)); err == nil {
		w, h = cfg.Width, cfg.Height
	}
	dim := func(n int) byte {
		if n >= 256 || n <= 0 {
			return 0 // 0 means 256
		}
		return byte(n)
	}
	var b bytes.Buffer
	le := binary.LittleEndian
	binary.Write(&b, le, [3]uint16{0, 1, 1}) // reserved, type icon, one image
	b.Write([]byte{dim(w), dim(h), 0, 0})    // width, height, no palette, reserved
	binary.Write(&b, le, [2]uint16{1, 32})   // colour planes, bits per pixel
	binary.Write(&b, le, [2]uint32{uint32(len(p)), 6 + 16})
	b.Write(p)
	return b.Bytes()
}
