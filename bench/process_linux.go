package main

import "syscall"

// childAttr has the kernel kill a child when the benchmark dies.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
