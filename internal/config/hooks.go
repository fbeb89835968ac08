package config

// Lifecycle events, in the order a blue/green deployment runs them (CodeDeploy's names).
const (
	EventBeforeInstall         = "BeforeInstall"
	EventAfterInstall          = "AfterInstall"
	EventAfterAllowTestTraffic = "AfterAllowTestTraffic"
	EventBeforeAllowTraffic    = "BeforeAllowTraffic"
	EventAfterAllowTraffic     = "AfterAllowTraffic"
)

// Listeners a hook's HTTP check can target.
const (
	ListenerTest       = "test"
	ListenerProduction = "production"
)

// Hooks are checks run at the lifecycle events of a deployment; a failing hook rolls the
// deployment back.
type Hooks struct {
	BeforeInstall         []Hook `yaml:"before_install,omitempty" json:"before_install,omitempty"`
	AfterInstall          []Hook `yaml:"after_install,omitempty" json:"after_install,omitempty"`
	AfterAllowTestTraffic []Hook `yaml:"after_allow_test_traffic,omitempty" json:"after_allow_test_traffic,omitempty"`
	BeforeAllowTraffic    []Hook `yaml:"before_allow_traffic,omitempty" json:"before_allow_traffic,omitempty"`
	AfterAllowTraffic     []Hook `yaml:"after_allow_traffic,omitempty" json:"after_allow_traffic,omitempty"`
}

// Hook is one check: an HTTP request through a listener, or a command run on the host.
type Hook struct {
	Name    string     `yaml:"name,omitempty" json:"name,omitempty"`
	HTTP    *HTTPCheck `yaml:"http,omitempty" json:"http,omitempty" jsonschema_description:"Exactly one of http or command."`
	Command []string   `yaml:"command,omitempty" json:"command,omitempty" jsonschema_description:"Command and arguments. Exactly one of http or command."`
	PassEnv []string   `yaml:"pass_env,omitempty" json:"pass_env,omitempty" jsonschema_description:"Names of variables of cutover's own environment this command sees besides PATH, HOME, USER, LANG, TZ and the CUTOVER_* of the deployment (for example a DATABASE_URL a migration check needs); nothing else of cutover's environment reaches it."`
	Timeout Duration   `yaml:"timeout,omitempty" json:"timeout,omitempty" jsonschema:"default=30s"`
}

// HTTPCheck is a request sent to 127.0.0.1 on an environment's listener.
type HTTPCheck struct {
	Path          string            `yaml:"path" json:"path" jsonschema:"required,pattern=^/"`
	Method        string            `yaml:"method,omitempty" json:"method,omitempty" jsonschema:"default=GET"`
	Listener      string            `yaml:"listener,omitempty" json:"listener,omitempty" jsonschema:"enum=test,enum=production,default=test"`
	ExpectStatus  int               `yaml:"expect_status,omitempty" json:"expect_status,omitempty" jsonschema:"minimum=100,maximum=599,default=200"`
	Headers       map[string]string `yaml:"headers,omitempty" json:"headers,omitempty" jsonschema_description:"Request headers, e.g. Origin for a CORS check."`
	ExpectBody    string            `yaml:"expect_body,omitempty" json:"expect_body,omitempty" jsonschema_description:"A substring the response body must contain."`
	ExpectHeaders map[string]string `yaml:"expect_headers,omitempty" json:"expect_headers,omitempty"`
}

// HookSet is the hooks of one lifecycle event.
type HookSet struct {
	Event string // EventBeforeInstall, ...
	Key   string // its yaml key: before_install, ...
	Hooks []Hook
}

// Ordered returns the hooks grouped by event, in lifecycle order, including empty events.
func (h *Hooks) Ordered() []HookSet {
	return []HookSet{
		{EventBeforeInstall, "before_install", h.BeforeInstall},
		{EventAfterInstall, "after_install", h.AfterInstall},
		{EventAfterAllowTestTraffic, "after_allow_test_traffic", h.AfterAllowTestTraffic},
		{EventBeforeAllowTraffic, "before_allow_traffic", h.BeforeAllowTraffic},
		{EventAfterAllowTraffic, "after_allow_traffic", h.AfterAllowTraffic},
	}
}
