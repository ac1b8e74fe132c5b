package minioproc

import "syscall"

// sysProcAttr puts the server in its own process group (a terminal ^C for
// the parent does not reach it) and, unless detached, has the kernel kill
// it when the parent dies.
func sysProcAttr(detach bool) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	if !detach {
		a.Pdeathsig = syscall.SIGKILL
	}
	return a
}
