// Command gen draws mcpkey's tray icons into the assets directory:
//
//	go run ./assets/gen
//
// Each icon is a 64x64 PNG: a dark outline and a coloured disc carrying a
// white glyph, so it reads on light and dark panels alike.
//
// The macOS menu bar wants template images instead (icon_*_template.png):
// black shapes whose alpha is all that counts, recoloured by the system for
// light and dark menu bars. fyne.io/systray sizes the status item image to
// 16x16 points, so they are drawn at 32x32 pixels, exactly @2x (and a clean
// halving on a non-Retina screen). Each state is a distinct silhouette: a
// key (ready), a key with "!" (attention), a padlock (locked), a key with
// "×" (error).
//
// Shapes are laid out in a 64-unit square whatever the output size and
// supersampled 4x4 per output pixel for smooth edges.
package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
)

const (
	units = 64.0 // shapes are laid out in a units x units square
	ss    = 4    // supersampling per axis
)

// shape reports whether a point (in 0..units coordinates) is inside.
type shape func(x, y float64) bool

type layer struct {
	in shape
	c  color.NRGBA
}

func disc(cx, cy, r float64) shape {
	return func(x, y float64) bool { return math.Hypot(x-cx, y-cy) <= r }
}

// capsule is a segment from (ax,ay) to (bx,by) with half-width w.
func capsule(ax, ay, bx, by, w float64) shape {
	return func(x, y float64) bool {
		dx, dy := bx-ax, by-ay
		t := ((x-ax)*dx + (y-ay)*dy) / (dx*dx + dy*dy)
		t = math.Max(0, math.Min(1, t))
		return math.Hypot(x-(ax+t*dx), y-(ay+t*dy)) <= w
	}
}

func rect(x0, y0, x1, y1, r float64) shape {
	return func(x, y float64) bool {
		qx := math.Max(math.Max(x0+r-x, x-(x1-r)), 0)
		qy := math.Max(math.Max(y0+r-y, y-(y1-r)), 0)
		return x >= x0 && x <= x1 && y >= y0 && y <= y1 && math.Hypot(qx, qy) <= r
	}
}

func union(ss ...shape) shape {
	return func(x, y float64) bool {
		for _, s := range ss {
			if s(x, y) {
				return true
			}
		}
		return false
	}
}

func minus(a, b shape) shape {
	return func(x, y float64) bool { return a(x, y) && !b(x, y) }
}

// render draws layers into a size x size image.
func render(layers []layer, size int) *image.NRGBA {
	k := units / float64(size)
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	for py := 0; py < size; py++ {
		for px := 0; px < size; px++ {
			var r, g, b, a float64
			for sy := 0; sy < ss; sy++ {
				for sx := 0; sx < ss; sx++ {
					x := k * (float64(px) + (float64(sx)+0.5)/ss)
					y := k * (float64(py) + (float64(sy)+0.5)/ss)
					// The topmost layer containing the sample wins.
					for i := len(layers) - 1; i >= 0; i-- {
						if layers[i].in(x, y) {
							c := layers[i].c
							al := float64(c.A) / 255
							r += float64(c.R) * al
							g += float64(c.G) * al
							b += float64(c.B) * al
							a += al
							break
						}
					}
				}
			}
			n := float64(ss * ss)
			if a == 0 {
				continue
			}
			img.SetNRGBA(px, py, color.NRGBA{
				R: uint8(math.Round(r / a)), G: uint8(math.Round(g / a)), B: uint8(math.Round(b / a)),
				A: uint8(math.Round(255 * a / n)),
			})
		}
	}
	return img
}

func icon(fill color.NRGBA, glyph shape) []layer {
	const c = units / 2
	white := color.NRGBA{255, 255, 255, 255}
	return []layer{
		{disc(c, c, 31.5), color.NRGBA{20, 22, 26, 230}}, // dark outline for light panels
		{disc(c, c, 29.5), white},                        // white ring for dark panels
		{disc(c, c, 27), fill},
		{glyph, white},
	}
}

// template is a macOS template image: opaque black where in is, transparent
// elsewhere.
func template(in shape) []layer {
	return []layer{{in, color.NRGBA{0, 0, 0, 255}}}
}

// Template silhouettes, in the 64-unit square.
var (
	// key runs from its bow (top left, with a hole) down to its bit (bottom
	// right, teeth on the lower side), leaving the top right corner free for
	// a badge.
	key = union(
		minus(disc(19, 19, 13.5), disc(19, 19, 6)),
		capsule(27, 27, 54, 54, 4.5),
		capsule(42, 42, 35.5, 48.5, 4),
		capsule(50.5, 50.5, 44.5, 56.5, 4),
	)
	// badge is the corner a badge glyph sits in; the key is cut back from
	// it so the two never touch.
	badge      = disc(50, 14, 16)
	badgeBang  = union(capsule(50, 6.5, 50, 18, 4), disc(50, 28, 4.5))
	badgeCross = union(capsule(42.5, 6.5, 57.5, 21.5, 4), capsule(57.5, 6.5, 42.5, 21.5, 4))
	// padlock: a shackle over a body with the keyhole punched out.
	padlock = union(
		minus(minus(disc(32, 23, 15), disc(32, 23, 8.5)), rect(0, 23, 64, 64, 0)),
		rect(17, 23, 23.5, 30, 0), rect(40.5, 23, 47, 30, 0),
		minus(rect(10, 28, 54, 60, 5), union(disc(32, 41, 5), rect(29.5, 41, 34.5, 52, 1.5))),
	)
)

func main() {
	dir := "assets"
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	check := union(capsule(18, 33, 28, 43, 4), capsule(28, 43, 46, 22, 4))
	bang := union(capsule(32, 15, 32, 36, 4.5), disc(32, 46, 4.5))
	cross := union(capsule(21, 21, 43, 43, 4.5), capsule(43, 21, 21, 43, 4.5))
	shackle := minus(union(minus(disc(32, 27, 10), disc(32, 27, 5.5)),
		rect(22, 27, 26.5, 33, 0), rect(37.5, 27, 42, 33, 0)), rect(26.5, 27, 37.5, 40, 0))
	lock := union(shackle, minus(rect(18, 31, 46, 49, 3), union(disc(32, 38, 3), rect(30.5, 38, 33.5, 44, 1))))
	icons := map[string]*image.NRGBA{
		"icon_ready.png":     render(icon(color.NRGBA{26, 127, 55, 255}, check), 64),
		"icon_attention.png": render(icon(color.NRGBA{191, 120, 0, 255}, bang), 64),
		"icon_locked.png":    render(icon(color.NRGBA{61, 90, 128, 255}, lock), 64),
		"icon_error.png":     render(icon(color.NRGBA{207, 34, 46, 255}, cross), 64),

		"icon_ready_template.png":     render(template(key), 32),
		"icon_attention_template.png": render(template(union(minus(key, badge), badgeBang)), 32),
		"icon_locked_template.png":    render(template(padlock), 32),
		"icon_error_template.png":     render(template(union(minus(key, badge), badgeCross)), 32),
	}
	for name, img := range icons {
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
		if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
	}
}
