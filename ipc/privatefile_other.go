//go:build !unix

package ipc

import "os"

// checkPrivateFile: on Windows the file sits in %LOCALAPPDATA%, whose ACL
// admits only the user.
func checkPrivateFile(path string, fi os.FileInfo) error { return nil }
