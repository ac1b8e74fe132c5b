//go:build !linux

package lambdarie

import "syscall"

// sysProcAttr puts the emulator in its own process group (so Close and Kill
// reach the function process it runs too).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// descendants is not implemented outside Linux: only the emulator's
// process group is signalled there.
func descendants(int) []int { return nil }
