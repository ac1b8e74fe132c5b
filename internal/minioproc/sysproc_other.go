//go:build !linux

package minioproc

import "syscall"

// sysProcAttr puts the server in its own process group.
func sysProcAttr(bool) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
