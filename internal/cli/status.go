package cli

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cutoverdev/cutover/internal/proxy"
	"github.com/cutoverdev/cutover/internal/runtime/docker"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/spf13/cobra"
)

type taskStatus struct {
	Service  string `json:"service"`
	Name     string `json:"name"`
	Color    string `json:"color"`
	Revision string `json:"revision"`
	State    string `json:"state"`
	HostPort int    `json:"host_port,omitempty"`
	Health   string `json:"health"`
}

type envStatus struct {
	Environment string            `json:"environment"`
	Status      string            `json:"status"`
	Revision    string            `json:"revision,omitempty"`
	UpdatedAt   *time.Time        `json:"updated_at,omitempty"`
	Deployment  *store.Deployment `json:"deployment,omitempty"` // the active one, else the last
	Tasks       []taskStatus      `json:"tasks"`
	// Unread names what status could not read (the Docker engine or the proxy
	// is down), so the tasks shown may be incomplete.
	Unread []string           `json:"unread,omitempty"`
	ECS    []ecsServiceStatus `json:"ecs,omitempty"` // platform ecs: the services as AWS reports them
}

func newStatusCmd(g *globals) *cobra.Command {
	var watch time.Duration
	cmd := &cobra.Command{
		Use:   "status [ENV]",
		Short: "Show environments: revision, tasks and their health at the load balancer",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if watch <= 0 {
				return showStatus(cmd, g, args)
			}
			for {
				if !g.json() {
					fmt.Fprint(g.stdout, "\033[H\033[2J")
				}
				if err := showStatus(cmd, g, args); err != nil {
					return err
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(watch):
				}
			}
		},
	}
	cmd.Flags().DurationVar(&watch, "watch", 0, "refresh every interval (e.g. 1s) until interrupted")
	return cmd
}

func showStatus(cmd *cobra.Command, g *globals, args []string) error {
	ctx := cmd.Context()
	envName := ""
	if len(args) == 1 {
		envName = args[0]
	}
	// What the store knows is shown even when the engine or the proxy is down;
	// what could not be read is said instead of failing.
	s, err := openStoreSession(ctx, g, envName)
	if err != nil {
		return err
	}
	defer s.close()
	s.proxy = proxy.NewClient(s.home)
	var unread []string
	if needsDocker(s.cfg, envName) {
		if s.rt, err = docker.Connect(ctx); err != nil {
			var down *docker.EngineUnreachableError
			if !errors.As(err, &down) {
				return err
			}
			unread = append(unread, "tasks: "+err.Error())
		}
	}
	health := map[string]string{} // task ID -> state at the proxy
	if targets, err := s.proxy.Targets(ctx); err == nil {
		for _, t := range targets {
			health[t.ID] = t.State
		}
	} else if needsDocker(s.cfg, envName) {
		unread = append(unread, "target health: "+err.Error())
	}
	names := sortedKeys(s.cfg.Environments)
	if envName != "" {
		names = []string{envName}
	}
	var out []envStatus
	for _, name := range names {
		if s.rt != nil {
			if err := reconcileOrphan(ctx, g, s, name); err != nil {
				return err
			}
		}
		es := envStatus{Environment: name, Status: "never started", Tasks: []taskStatus{}}
		st, err := s.store.GetEnvState(ctx, s.cfg.Project, name)
		switch {
		case err == nil:
			es.Status, es.Revision = st.Status, st.Revision
			u := st.UpdatedAt
			es.UpdatedAt = &u
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		if d, err := s.store.ActiveDeployment(ctx, s.cfg.Project, name); err == nil {
			es.Deployment = &d
		} else if ds, err := s.store.ListDeployments(ctx, s.cfg.Project, name, 1); err == nil && len(ds) == 1 {
			es.Deployment = &ds[0]
		}
		if isECS(s.cfg, name) {
			es.ECS = ecsStatus(ctx, s.cfg, name)
			out = append(out, es)
			continue
		}
		es.Unread = unread
		if s.rt == nil {
			out = append(out, es)
			continue
		}
		tasks, err := s.rt.ListTasks(ctx, docker.Labels{Project: s.cfg.Project, Environment: name})
		if err != nil {
			return err
		}
		for _, t := range tasks {
			h := health[t.ID]
			if h == "" {
				h = "not registered"
			}
			es.Tasks = append(es.Tasks, taskStatus{Service: t.Labels.Service, Name: t.Name, Color: t.Labels.Color,
				Revision: t.Labels.Revision, State: t.State, HostPort: t.HostPort, Health: h})
		}
		out = append(out, es)
	}
	return g.print(out, func(w io.Writer) {
		// What could not be read is the same for every environment: said once.
		defer func() {
			for _, u := range unread {
				fmt.Fprintf(w, "not read: %s\n", u)
			}
		}()
		for _, es := range out {
			fmt.Fprintf(w, "%s: %s", es.Environment, es.Status)
			if es.Revision != "" {
				fmt.Fprintf(w, " (revision %s)", es.Revision)
			}
			fmt.Fprintln(w)
			if d := es.Deployment; d != nil {
				fmt.Fprintf(w, "  deployment %s: %s, phase %s, %d%% of traffic on revision %s", d.ID, d.Status, d.Phase, d.TrafficPercent, d.Revision)
				if d.Reason != "" {
					fmt.Fprintf(w, " (%s)", d.Reason)
				}
				fmt.Fprintln(w)
			}
			for _, e := range es.ECS {
				if e.Error != "" {
					fmt.Fprintf(w, "  ecs %-10s %s\n", e.Service, e.Error)
					continue
				}
				fmt.Fprintf(w, "  ecs %-10s %s %s: %d/%d running, %d pending, %s\n", e.Service, e.ECSService, e.Status, e.Running, e.Desired, e.Pending, e.TaskDefinition)
				for _, d := range e.Deployments {
					fmt.Fprintf(w, "      deployment %s\n", d)
				}
			}
			for _, t := range es.Tasks {
				fmt.Fprintf(w, "  %-10s %-40s %-6s %-8s 127.0.0.1:%-5d %s\n", t.Service, t.Name, t.Color, t.State, t.HostPort, t.Health)
			}

		}
	})
}
