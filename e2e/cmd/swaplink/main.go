// Command swaplink is the attacker of the e2e socket-directory tests: run
// as another user, it owns the name LINK in a shared sticky directory and
// flips it, as a symbolic link, between the directories A and B as fast as
// it can (each flip atomic: a new link renamed over the old), until killed.
// It prints "SWAPPING" once LINK exists.
//
// Usage: swaplink LINK A B
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: swaplink LINK A B")
		os.Exit(2)
	}
	link, targets := os.Args[1], os.Args[2:]
	tmp := link + ".new"
	for i := 0; ; i++ {
		os.Remove(tmp)
		if err := os.Symlink(targets[i%2], tmp); err != nil {
			fmt.Fprintln(os.Stderr, "swaplink:", err)
			os.Exit(1)
		}
		if err := os.Rename(tmp, link); err != nil {
			fmt.Fprintln(os.Stderr, "swaplink:", err)
			os.Exit(1)
		}
		if i == 0 {
			fmt.Println("SWAPPING")
		}
	}
}
