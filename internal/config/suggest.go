package config

import (
	"reflect"
	"slices"
	"strings"
)

// composeKeys maps docker-compose spellings, which people carry over, to ours.
var composeKeys = map[string]string{
	"healthcheck": "health",
	"environment": "env",
	"ports":       "port",
	"replicas":    "desired_count",
	"deploy":      "desired_count",
	"expose":      "port",
	"routes":      "route",
}

// suggestKey says what to write instead of an unknown key: the closest known key when one
// is close, or else the list of known keys.
func suggestKey(unknown string, t reflect.Type) string {
	if t == nil {
		return "remove it"
	}
	var known []string
	for name := range yamlFields(t) {
		known = append(known, name)
	}
	slices.Sort(known)
	if alt, ok := composeKeys[strings.ToLower(unknown)]; ok && slices.Contains(known, alt) {
		return `did you mean "` + alt + `"?`
	}
	best, bestDist := "", len(unknown)
	for _, k := range known {
		d := editDistance(strings.ToLower(unknown), k)
		if d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" && bestDist <= max(1, len(unknown)/3) {
		return `did you mean "` + best + `"?`
	}
	return "valid keys: " + strings.Join(known, ", ")
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
