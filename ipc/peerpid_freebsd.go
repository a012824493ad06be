package ipc

func peerPID(fd int) int { return 0 }
