//go:build !linux

package main

import "syscall"

// childAttr: no parent-death signal off Linux (the benchmark's CPU figures
// read /proc, so it is run on Linux).
func childAttr() *syscall.SysProcAttr { return nil }
