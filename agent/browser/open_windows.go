//go:build windows

package browser

func defaultCommand(url string) []string {
	return []string{"rundll32", "url.dll,FileProtocolHandler", url}
}
