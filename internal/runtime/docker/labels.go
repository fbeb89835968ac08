package docker

import "github.com/moby/moby/client"

// Label keys carried by every container cutover starts (see docs/DESIGN.md).
const (
	LabelManaged     = "dev.cutover.managed"
	LabelProject     = "dev.cutover.project"
	LabelEnvironment = "dev.cutover.environment"
	LabelService     = "dev.cutover.service"
	LabelRevision    = "dev.cutover.revision"
	LabelColor       = "dev.cutover.color"
	// LabelExecution marks a pipeline command's container with its execution,
	// so that a restarted daemon removes what a killed one left running.
	LabelExecution = "dev.cutover.execution"
	// LabelOwner is the ID of the store (store.Store.ID) whose cutover
	// started the container (Runtime.SetOwner). Images carry LabelStore,
	// which a container inherits from its image and which names the store
	// that built the image, not the one that runs it: so a label of its own.
	LabelOwner = "dev.cutover.owner"
)

// Label keys carried by the images cutover builds.
const (
	// LabelStore is the ID of the store (store.Store.ID) whose cutover built
	// the image: pruning removes only images carrying its own store's ID, so
	// two CUTOVER_HOMEs with the same project on one engine never remove
	// each other's images.
	LabelStore = "dev.cutover.store"
	// LabelBuild is the build ID of an image built by `up` or `deploy`.
	LabelBuild = "dev.cutover.build"
	// LabelCommit is the commit a pipeline built the image from.
	LabelCommit = "dev.cutover.commit"
)

// Labels identify a task. On a task, empty fields are omitted; as a filter,
// every non-empty field must match and empty fields match anything.
type Labels struct {
	Project, Environment, Service, Revision, Color string
	Execution                                      string
}

func (l Labels) pairs() [][2]string {
	return [][2]string{
		{LabelProject, l.Project},
		{LabelEnvironment, l.Environment},
		{LabelService, l.Service},
		{LabelRevision, l.Revision},
		{LabelColor, l.Color},
		{LabelExecution, l.Execution},
	}
}

// Map returns the container labels for l, including dev.cutover.managed=true.
func (l Labels) Map() map[string]string {
	m := map[string]string{LabelManaged: "true"}
	for _, p := range l.pairs() {
		if p[1] != "" {
			m[p[0]] = p[1]
		}
	}
	return m
}

// filters returns an engine filter selecting managed containers matching l.
func (l Labels) filters() client.Filters {
	f := make(client.Filters).Add("label", LabelManaged+"=true")
	for _, p := range l.pairs() {
		if p[1] != "" {
			f.Add("label", p[0]+"="+p[1])
		}
	}
	return f
}

func labelsFromMap(m map[string]string) Labels {
	return Labels{
		Project:     m[LabelProject],
		Environment: m[LabelEnvironment],
		Service:     m[LabelService],
		Revision:    m[LabelRevision],
		Color:       m[LabelColor],
		Execution:   m[LabelExecution],
	}
}
