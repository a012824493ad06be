//go:build unix && !darwin

package browser

func defaultCommand(url string) []string { return []string{"xdg-open", url} }
