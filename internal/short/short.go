// Package short gives the short forms of long identifiers that messages,
// logs and variables show: a commit as git abbreviates it, an image,
// container or task ID as Docker does. It is a leaf: it imports nothing of
// cutover, so any package can use it.
package short

import "strings"

// SHA is a commit's first 7 characters, as `git log --oneline` shows it
// (CUTOVER_SHORT_SHA); shorter input passes unchanged.
func SHA(commit string) string {
	if len(commit) > 7 {
		return commit[:7]
	}
	return commit
}

// ID shortens a hexadecimal ID (an image or container ID, with or without
// its "sha256:" prefix, an ECS task ID) to its first 12 digits, as `docker
// ps` shows it. The prefix is always dropped; anything that is not all hex
// digits (a container or task name) otherwise passes unchanged.
func ID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 && isHex(id) {
		return id[:12]
	}
	return id
}

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// Line is the first line of a message, trimmed: what a one-line summary,
// a table cell or a stored reason shows of it.
func Line(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}
