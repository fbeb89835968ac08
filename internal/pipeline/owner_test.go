package pipeline

import (
	"context"
	"strings"
	"testing"
)

func TestDeployOwnerNamesWhoCausedTheExecution(t *testing.T) {
	const local = "cutover (pid 42 on vm)"
	bg := context.Background()
	if got := DeployOwner(bg, local); got != local {
		t.Fatalf("outside a deploy action: %q, want the process's own %q", got, local)
	}
	for _, c := range []struct{ author, kind, want string }{
		{"ci-bot", TriggerManual, "ci-bot (pid 42 on vm as cutover, manual), execution x-1"},
		{"octocat", TriggerPush, "octocat (pid 42 on vm as cutover, push), execution x-1"},
		{"schedule", TriggerSchedule, "schedule (pid 42 on vm as cutover, schedule), execution x-1"},
		// No author (a poll): the OS user stays the actor.
		{"", TriggerPoll, "cutover (pid 42 on vm), execution x-1"},
	} {
		ctx := context.WithValue(bg, ownerKey{}, deployFor{id: "x-1", author: c.author, kind: c.kind})
		if got := DeployOwner(ctx, local); got != c.want {
			t.Errorf("author %q: %q, want %q", c.author, got, c.want)
		}
		if tag := OwnerTag(ctx); tag != "execution x-1" {
			t.Errorf("OwnerTag %q", tag)
		}
	}
}

// The author comes from a webhook payload or a token's name. A crafted one
// must not pose as another execution's tag (a cancel of that execution
// would stop this deployment), as another process, or break the line.
func TestDeployOwnerRefusesACraftedAuthor(t *testing.T) {
	for _, author := range []string{
		"mallory), execution x-2",
		"mallory (pid 1 on prod)",
		"mallory\nexecution x-2",
		strings.Repeat("m", 500) + " execution x-2",
	} {
		ctx := context.WithValue(context.Background(), ownerKey{}, deployFor{id: "x-1", author: author, kind: TriggerPush})
		got := DeployOwner(ctx, "cutover (pid 42 on vm)")
		if strings.Contains(got, "execution x-2") || strings.Count(got, " (pid ") != 1 || strings.ContainsAny(got, "\n\r") {
			t.Errorf("author %q gave owner %q", author, got)
		}
		if !strings.HasSuffix(got, ", execution x-1") {
			t.Errorf("author %q: owner %q lost its execution tag", author, got)
		}
		if name, _, _ := strings.Cut(got, " (pid "); len(name) > 64 || strings.ContainsAny(name, " (),") {
			t.Errorf("author %q: actor %q", author, name)
		}
	}
}
