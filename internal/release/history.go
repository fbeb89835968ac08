package release

import (
	"context"
	"strings"
	"time"
)

// History lists env's newest deployments and revisions (limit each) from
// the store alone: it needs neither Docker nor the proxy nor AWS.
func (m *Manager) History(ctx context.Context, env string, limit int) (History, error) {
	if _, err := m.environment(env); err != nil {
		return History{}, err
	}
	deps, err := m.Store.ListDeployments(ctx, m.Config.Project, env, limit)
	if err != nil {
		return History{}, err
	}
	revs, err := m.Store.ListRevisions(ctx, m.Config.Project, env, limit)
	if err != nil {
		return History{}, err
	}
	now := time.Now()
	h := History{Deployments: []HistoryDeployment{}, Revisions: revs}
	for _, d := range deps {
		h.Deployments = append(h.Deployments, HistoryDeployment{Deployment: d, Actor: actorOf(d.Owner), Duration: deploymentDuration(d.CreatedAt, d.FinishedAt, now)})
	}
	return h, nil
}

// actorOf is who a deployment was made by, from its owner as Actor writes
// it ("alice (pid 12 on vm)"), or the owner itself when it names no user.
func actorOf(owner string) string {
	if name, _, ok := strings.Cut(owner, " (pid "); ok {
		return name
	}
	return owner
}

// deploymentDuration is how long a deployment took, rounded for reading,
// or how long it has been running so far.
func deploymentDuration(created time.Time, finished *time.Time, now time.Time) string {
	if finished != nil {
		return roundDuration(finished.Sub(created)).String()
	}
	return "running " + roundDuration(now.Sub(created)).String()
}

func roundDuration(d time.Duration) time.Duration {
	switch {
	case d < 0:
		return 0
	case d < 10*time.Second:
		return d.Round(100 * time.Millisecond)
	default:
		return d.Round(time.Second)
	}
}
