//go:build !unix

package safefile

import "io/fs"

const extraFlags = 0

const existingFlags = 0

func owner(fs.FileInfo) (int, bool) { return 0, false }

func isLinkErr(error) bool { return false }
