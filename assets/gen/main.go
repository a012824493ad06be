// Command gen draws mcpkey's tray icons into the assets directory:
//
//	go run ./assets/gen
//
// Each icon is a 64x64 PNG: a dark outline and a coloured disc carrying a
// white glyph, so it reads on light and dark panels alike. Shapes are
// supersampled 4x4 for smooth edges.
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
	size = 64
	ss   = 4 // supersampling per axis
)

// shape reports whether a point (in 0..size pixel coordinates) is inside.
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

func render(layers []layer) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	for py := 0; py < size; py++ {
		for px := 0; px < size; px++ {
			var r, g, b, a float64
			for sy := 0; sy < ss; sy++ {
				for sx := 0; sx < ss; sx++ {
					x := float64(px) + (float64(sx)+0.5)/ss
					y := float64(py) + (float64(sy)+0.5)/ss
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
	const c = size / 2.0
	white := color.NRGBA{255, 255, 255, 255}
	return []layer{
		{disc(c, c, 31.5), color.NRGBA{20, 22, 26, 230}}, // dark outline for light panels
		{disc(c, c, 29.5), white},                        // white ring for dark panels
		{disc(c, c, 27), fill},
		{glyph, white},
	}
}

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
	icons := map[string][]layer{
		"icon_ready.png":     icon(color.NRGBA{26, 127, 55, 255}, check),
		"icon_attention.png": icon(color.NRGBA{191, 120, 0, 255}, bang),
		"icon_locked.png":    icon(color.NRGBA{61, 90, 128, 255}, lock),
		"icon_error.png":     icon(color.NRGBA{207, 34, 46, 255}, cross),
	}
	for name, ls := range icons {
		var buf bytes.Buffer
		if err := png.Encode(&buf, render(ls)); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
		if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
	}
}
