//go:build !linux

package proxy

import (
	"net"
	"time"
)

// writeFloorOf: off Linux a client's connection has no write floor (see
// floorWrites).
func writeFloorOf(net.Conn) (time.Duration, bool) { return 0, false }
