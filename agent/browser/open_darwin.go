//go:build darwin

package browser

func defaultCommand(url string) []string { return []string{"open", url} }
